//! The candidates an ensemble chooses from and combines.

use super::*;

/// The seasonal median forecast of grid position `target` from the points before `origin`:
/// the median of the finite values at the same phase in the newest `MEDIAN_CYCLES` cycles
/// before `origin`; NaN when there are none.
pub(super) fn seasonal_median(window: &[f64], origin: usize, target: usize, period: usize) -> f64 {
    let cycles_back = (target + 1 - origin).div_ceil(period);
    // On the stack: validation asks for one median per origin, step and period.
    let mut values = [0.0; MEDIAN_CYCLES];
    let mut count = 0;
    for k in cycles_back..cycles_back + MEDIAN_CYCLES {
        match target
            .checked_sub(k * period)
            .map(|position| window[position])
        {
            Some(value) if value.is_finite() => {
                values[count] = value;
                count += 1;
            }
            _ => {}
        }
    }
    if count == 0 {
        f64::NAN
    } else {
        crate::model::robust::median(&mut values[..count])
    }
}

/// One forecasting method of the combination, positioned like the forecaster after the newest
/// point it has seen. The seasonal members keep one value per phase of their period as `f32`:
/// a forecast needs seven significant digits, not sixteen, and these slots are what the
/// combination adds to a series' memory (a daily period at one minute: 5.6 KiB each).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Member {
    /// The forecaster's seasonal profiles plus exponential smoothing of what they leave.
    Smoothing(FittedEts),
    /// Seasonal naive: the newest value seen at the same phase of `period` (a missing point
    /// keeps the older value of its phase).
    SeasonalNaive { period: usize, slots: Vec<f32> },
    /// Seasonal median: per phase, the median of the newest 5 cycles' values
    /// as of the refit (robust to a disturbed cycle; zero for a series that is mostly zero,
    /// where any mean-like forecast misses every ordinary point).
    SeasonalMedian { period: usize, profile: Vec<f32> },
}

/// The kinds of method the members belong to: the members of one family move together (see
/// [`super::scoring::weights_by_family`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    Smoothing,
    SeasonalNaive,
    SeasonalMedian,
}

impl Member {
    pub(super) fn family(&self) -> Family {
        match self {
            Member::Smoothing(_) => Family::Smoothing,
            Member::SeasonalNaive { .. } => Family::SeasonalNaive,
            Member::SeasonalMedian { .. } => Family::SeasonalMedian,
        }
    }

    pub(super) fn seasonal_naive(period: usize) -> Member {
        Member::SeasonalNaive {
            period,
            slots: vec![f32::NAN; period],
        }
    }

    /// The forecast `steps` points after the newest seen, the next point being at grid
    /// `position`; NaN when the member has nothing to say there (a phase never observed).
    pub(super) fn forecast(
        &self,
        steps: u32,
        position: u64,
        seasonal: Option<&SeasonalProfiles>,
    ) -> f64 {
        let target = position + u64::from(steps.max(1)) - 1;
        match self {
            Member::Smoothing(model) => {
                model.forecast(steps).0 + seasonal.map_or(0.0, |s| s.value_at(target))
            }
            Member::SeasonalNaive { period, slots } => {
                f64::from(slots[(target % *period as u64) as usize])
            }
            Member::SeasonalMedian { period, profile } => {
                f64::from(profile[(target % *period as u64) as usize])
            }
        }
    }

    /// Takes in the point at grid `position` (NaN for a gap).
    pub(super) fn observe(
        &mut self,
        value: f64,
        position: u64,
        seasonal: Option<&SeasonalProfiles>,
    ) {
        match self {
            Member::Smoothing(model) => {
                model.update(value - seasonal.map_or(0.0, |s| s.value_at(position)));
            }
            Member::SeasonalNaive { period, slots } => {
                if value.is_finite() {
                    slots[(position % *period as u64) as usize] = value as f32;
                }
            }
            // The profile is taken anew at each refit.
            Member::SeasonalMedian { .. } => {}
        }
    }

    /// The kind of forecast the forecaster makes when its model choice could not be validated
    /// (too short a window, or no horizon): its own model alone.
    pub const UNVALIDATED: &'static str = "unvalidated";

    /// The method's kind, a bounded label value: `seasonal_naive`, `seasonal_median`, or
    /// `smoothing_` with `no_trend`, `damped_trend` or `linear_trend`.
    pub fn kind(&self) -> &'static str {
        match self {
            Member::Smoothing(model) => match model.trend() {
                Trend::None => "smoothing_no_trend",
                Trend::Damped => "smoothing_damped_trend",
                Trend::Additive => "smoothing_linear_trend",
            },
            Member::SeasonalNaive { .. } => "seasonal_naive",
            Member::SeasonalMedian { .. } => "seasonal_median",
        }
    }

    /// The method's name, with the season it repeats or is added to.
    pub fn name(&self, periods: &[usize]) -> String {
        match self {
            Member::Smoothing(model) if periods.is_empty() => model.trend().name().to_owned(),
            Member::Smoothing(model) => format!("MSTL{periods:?} + {}", model.trend().name()),
            Member::SeasonalNaive { period, .. } => format!("seasonal naive[{period}]"),
            Member::SeasonalMedian { period, .. } => format!("seasonal median[{period}]"),
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Member::Smoothing(_) => 0,
            Member::SeasonalNaive { slots, .. } => slots.capacity() * std::mem::size_of::<f32>(),
            Member::SeasonalMedian { profile, .. } => {
                profile.capacity() * std::mem::size_of::<f32>()
            }
        }
    }
}
