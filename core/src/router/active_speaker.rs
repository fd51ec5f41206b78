//! The room's dominant speaker, from the audio levels publishers put in
//! their packets (RFC 6464: 0 is the loudest, 127 silence, in −dBov).
//!
//! Every [`INTERVAL`] each audio producer's activity is how loud its
//! loudest packet of the interval was (127 − level): speech comes in
//! syllables, so the loudest packet says more than the mean. The speaker
//! changes with hysteresis, as a meeting needs (draft of the idea: Volfin
//! and Cohen, "Dominant Speaker Identification for Multipoint
//! Videoconferencing", 2012, which Jitsi and mediasoup implement in full):
//! - with no speaker yet, the first producer active enough becomes it;
//! - a challenger takes over once it has [`WINS_TO_SWITCH`] points: an
//!   interval in which it leads the speaker by [`LEAD_DB`] scores 1, or 2
//!   when the speaker is quiet (taking over from someone who stopped is
//!   quicker than interrupting someone who talks: a 200 ms interjection,
//!   which touches at most two intervals, never switches); an interval the
//!   speaker leads resets the count, and one in which both are quiet
//!   leaves it;
//! - silence alone never clears the speaker (the tile stays highlighted
//!   until someone else talks).

use std::time::Duration;

use crate::ids::ProducerId;

/// How often the speaker is decided.
pub const INTERVAL: Duration = Duration::from_millis(300);
/// Activity (127 − level) below this is silence (quieter than −87 dBov).
pub const MIN_ACTIVITY: u8 = 40;
/// A challenger must be this much louder than the speaker, dB.
pub const LEAD_DB: u8 = 6;
/// Points a challenger needs to take over (three intervals of leading a
/// talking speaker, two of leading a quiet one).
pub const WINS_TO_SWITCH: u8 = 3;

/// The decision state.
#[derive(Debug, Default)]
pub struct SpeakerDetector {
    current: Option<ProducerId>,
    challenger: Option<(ProducerId, u8)>,
}

impl SpeakerDetector {
    /// The dominant speaker's audio producer, if any yet.
    pub fn current(&self) -> Option<ProducerId> {
        self.current
    }

    /// Takes one interval's activity per audio producer (127 − the loudest
    /// level, 0 when it sent nothing). Returns the new speaker when it
    /// changed.
    pub fn on_interval(&mut self, activity: &[(ProducerId, u8)]) -> Option<ProducerId> {
        let loudest = activity
            .iter()
            .copied()
            .filter(|(_, a)| *a >= MIN_ACTIVITY)
            .max_by_key(|(p, a)| (*a, std::cmp::Reverse(p.0)));
        let Some(cur) = self.current else {
            let (p, _) = loudest?;
            self.current = Some(p);
            self.challenger = None;
            return Some(p);
        };
        let cur_activity = activity
            .iter()
            .find(|(p, _)| *p == cur)
            .map_or(0, |(_, a)| *a);
        match loudest {
            Some((p, a)) if p != cur && a >= cur_activity.saturating_add(LEAD_DB) => {
                let points = if cur_activity < MIN_ACTIVITY { 2 } else { 1 };
                let wins = match self.challenger {
                    Some((c, w)) if c == p => w + points,
                    _ => points,
                };
                if wins >= WINS_TO_SWITCH {
                    self.current = Some(p);
                    self.challenger = None;
                    return Some(p);
                }
                self.challenger = Some((p, wins));
            }
            // The speaker is still the loudest: challengers start over.
            Some(_) => self.challenger = None,
            // Everyone quiet: nothing changes.
            None => {}
        }
        None
    }

    /// Forgets `producer` (closed). When it was the speaker, there is none
    /// until someone is active again.
    pub fn remove(&mut self, producer: ProducerId) {
        if self.current == Some(producer) {
            self.current = None;
        }
        if self.challenger.is_some_and(|(c, _)| c == producer) {
            self.challenger = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ProducerId = ProducerId(1);
    const B: ProducerId = ProducerId(2);
    const C: ProducerId = ProducerId(3);

    #[test]
    fn the_speaker_follows_a_scripted_pattern_with_hysteresis() {
        let mut d = SpeakerDetector::default();
        // Everyone quiet: no speaker.
        assert_eq!(d.on_interval(&[(A, 0), (B, 10), (C, 0)]), None);
        // A speaks: at once, as there is none.
        assert_eq!(d.on_interval(&[(A, 80), (B, 10), (C, 0)]), Some(A));
        // B is louder twice while A talks: not enough.
        assert_eq!(d.on_interval(&[(A, 60), (B, 90), (C, 0)]), None);
        assert_eq!(d.on_interval(&[(A, 60), (B, 90), (C, 0)]), None);
        // A leads again: B starts over.
        assert_eq!(d.on_interval(&[(A, 80), (B, 60), (C, 0)]), None);
        assert_eq!(d.on_interval(&[(A, 60), (B, 90), (C, 0)]), None);
        // A pause of everyone in between does not reset B's lead…
        assert_eq!(d.on_interval(&[(A, 0), (B, 0), (C, 0)]), None);
        assert_eq!(d.current(), Some(A), "silence keeps the speaker");
        // …and leading a quiet A scores 2: it switches.
        assert_eq!(d.on_interval(&[(A, 0), (B, 90), (C, 0)]), Some(B));
        // Louder by less than 6 dB: never.
        for _ in 0..5 {
            assert_eq!(d.on_interval(&[(A, 0), (B, 80), (C, 84)]), None);
        }
        // B goes away; C is active: C at once.
        d.remove(B);
        assert_eq!(d.current(), None);
        assert_eq!(d.on_interval(&[(A, 0), (C, 84)]), Some(C));
    }
}
