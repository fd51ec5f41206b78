//! A playback's frames: the file's, in order, on one stream clock that
//! goes on across loops, with the look-ahead a keyframe request needs.

use std::collections::VecDeque;

use super::source::{Source, SourceError, SourceFrame, SourceInfo};

/// The gap between a loop's last frame and the next loop's first, ms.
const LOOP_GAP_MS: u64 = 20;

/// A file's frames as a playback sends them.
pub(super) struct Frames {
    source: Box<dyn Source>,
    looped: bool,
    /// Frames read ahead (looking for a keyframe), sent before the file's next.
    ahead: VecDeque<SourceFrame>,
    /// Stream time of the current loop's file time 0, ms.
    loop_base: u64,
    /// The latest file time read in this loop, ms.
    last_ms: u64,
    /// Times the file started over.
    pub(super) loops: u64,
}

impl Frames {
    /// The frames of `source`; with `looped`, over and over.
    pub(super) fn new(source: Box<dyn Source>, looped: bool) -> Self {
        Self {
            source,
            looped,
            ahead: VecDeque::new(),
            loop_base: 0,
            last_ms: 0,
            loops: 0,
        }
    }

    /// What the file holds.
    pub(super) fn info(&self) -> &SourceInfo {
        self.source.info()
    }

    /// The next frame of the file, its `ms` on the stream clock; at the
    /// end, with `looped`, the first again after the last.
    ///
    /// Errors: the file's ([`SourceError`]).
    pub(super) fn next(&mut self) -> Result<Option<SourceFrame>, SourceError> {
        if let Some(f) = self.ahead.pop_front() {
            return Ok(Some(f));
        }
        self.read()
    }

    fn read(&mut self) -> Result<Option<SourceFrame>, SourceError> {
        let mut f = match self.source.next_frame()? {
            Some(f) => f,
            None => {
                // An empty file, or an end without looping: the end.
                if !self.looped || self.last_ms == 0 {
                    return Ok(None);
                }
                self.source.rewind()?;
                self.loop_base += self.last_ms + LOOP_GAP_MS;
                self.last_ms = 0;
                self.loops += 1;
                match self.source.next_frame()? {
                    Some(f) => f,
                    None => return Ok(None),
                }
            }
        };
        self.last_ms = self.last_ms.max(f.ms);
        f.ms += self.loop_base;
        Ok(Some(f))
    }

    /// A video keyframe within `max_ms` of stream time after `current`
    /// (the frame about to be sent): the frames before it are dropped and
    /// it is returned. `None` when there is none that close; nothing is
    /// dropped then.
    ///
    /// Errors: the file's ([`SourceError`]).
    pub(super) fn keyframe_within(
        &mut self,
        current: &SourceFrame,
        max_ms: u64,
    ) -> Result<Option<SourceFrame>, SourceError> {
        let limit = current.ms + max_ms;
        let mut i = 0;
        loop {
            if i == self.ahead.len() {
                match self.read()? {
                    Some(f) => self.ahead.push_back(f),
                    None => return Ok(None),
                }
            }
            let f = &self.ahead[i];
            if f.ms > limit {
                return Ok(None);
            }
            if f.video && f.keyframe {
                self.ahead.drain(..i);
                return Ok(self.ahead.pop_front());
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in memory: video every 100 ms (a keyframe every `key_every`
    /// frames), audio every 20 ms, for `ms`.
    struct Fake {
        frames: Vec<SourceFrame>,
        at: usize,
        info: SourceInfo,
    }

    impl Fake {
        fn new(ms: u64, key_every: u64) -> Box<Self> {
            let mut frames = Vec::new();
            for t in (0..ms).step_by(20) {
                if t % 100 == 0 {
                    frames.push(SourceFrame {
                        ms: t,
                        video: true,
                        data: vec![1],
                        keyframe: (t / 100) % key_every == 0,
                    });
                }
                frames.push(SourceFrame {
                    ms: t,
                    video: false,
                    data: vec![2],
                    keyframe: false,
                });
            }
            Box::new(Self {
                frames,
                at: 0,
                info: SourceInfo::default(),
            })
        }
    }

    impl Source for Fake {
        fn info(&self) -> &SourceInfo {
            &self.info
        }
        fn next_frame(&mut self) -> Result<Option<SourceFrame>, SourceError> {
            self.at += 1;
            Ok(self.frames.get(self.at - 1).cloned())
        }
        fn rewind(&mut self) -> Result<(), SourceError> {
            self.at = 0;
            Ok(())
        }
    }

    #[test]
    fn a_loop_goes_on_on_the_stream_clock() {
        let mut f = Frames::new(Fake::new(1000, 5), true);
        let mut times = Vec::new();
        while times.len() < 120 {
            times.push(f.next().expect("reads").expect("loops forever").ms);
        }
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "never back");
        assert_eq!(f.loops, 1);
        // The second loop starts 20 ms after the first one's last frame.
        assert!(times.contains(&1000) && !times.contains(&990));
        let mut once = Frames::new(Fake::new(200, 5), false);
        let mut n = 0;
        while once.next().expect("reads").is_some() {
            n += 1;
        }
        assert_eq!(n, 12, "2 video and 10 audio frames, then the end");
    }

    #[test]
    fn a_keyframe_request_skips_to_a_near_keyframe_and_keeps_a_far_one() {
        // Keyframes at 0, 500, 1000 ms.
        let mut f = Frames::new(Fake::new(2000, 5), false);
        let mut current = f.next().expect("reads").expect("a frame");
        while current.ms < 120 {
            current = f.next().expect("reads").expect("a frame");
        }
        let k = f
            .keyframe_within(&current, 3000)
            .expect("reads")
            .expect("one near");
        assert_eq!((k.ms, k.video, k.keyframe), (500, true, true));
        // What comes next is after it: the frames before were skipped.
        assert!(f.next().expect("reads").expect("a frame").ms >= 500);
        // A keyframe 480 ms away is too far for a 300 ms window: nothing
        // is skipped, the read-ahead frames come next in order.
        let current = f.next().expect("reads").expect("a frame");
        let before = current.ms;
        assert!(f.keyframe_within(&current, 300).expect("reads").is_none());
        let next = f.next().expect("reads").expect("a frame");
        assert!(
            next.ms >= before && next.ms < before + 40,
            "{before} then {}",
            next.ms
        );
    }
}
