//! Frame energy and noise-floor tracking.

/// Tracks the background level of a signal from 10 ms frame energies: the
/// floor follows any quieter frame at once and rises by at most
/// `rise_db_per_s` otherwise (a minimum-statistics tracker), so speech,
/// which always has pauses, never lifts it far while steady noise does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoiseFloor {
    floor: f32,
    rise_per_frame: f32,
}

impl NoiseFloor {
    pub(crate) fn new(rise_db_per_s: f32) -> Self {
        Self {
            floor: f32::MAX,
            rise_per_frame: 10f32.powf(rise_db_per_s / 10.0 / 100.0),
        }
    }

    /// Updates with one frame's mean-square energy; returns the floor.
    pub(crate) fn update(&mut self, energy: f32) -> f32 {
        let energy = energy.max(1.0);
        self.floor = if energy < self.floor {
            energy
        } else {
            (self.floor * self.rise_per_frame).min(energy)
        };
        self.floor
    }

    pub(crate) fn floor(&self) -> f32 {
        self.floor
    }
}

/// Mean-square value of a frame.
pub(crate) fn mean_square(frame: &[i16]) -> f32 {
    let sum: f32 = frame.iter().map(|&x| f32::from(x) * f32::from(x)).sum();
    sum / frame.len().max(1) as f32
}
