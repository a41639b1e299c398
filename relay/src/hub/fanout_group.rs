//! Shared writer tasks for caught-up viewers of one stream: RTMP viewers on plain TCP, and
//! HTTP-FLV viewers of the relay's own HTTP-FLV writer (`http::flv_direct`), in the same groups.
//!
//! A viewer whose socket keeps up does not need a task of its own: one group task per worker
//! thread wakes once per frame and writes the frame to each of its members with a non-blocking
//! `writev`. A member leaves the group (and its connection's own task takes over, with the
//! slow-viewer timeout) when its socket is full, when its connection has a control message to
//! send or is closing, when the stream ends, or when a write fails. This turns "one task
//! wake-up per viewer per frame" into "one per group per frame".
//!
//! (Over 600 lines with its unit tests; the fan-out task itself is ~190 lines.)

use std::any::Any;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::{Batch, Subscription};
use crate::metrics::Metrics;
use crate::protocol::Protocol;
use crate::write_cursor::{MAX_IOVECS, WriteCursor};

/// Members written between two yields to the scheduler (about 0.5 ms of writes).
const MEMBERS_PER_SLICE: usize = 64;

/// A socket the group can write to without waiting. The protocol layer implements it for its
/// socket type; `Any` lets it take its own type back from a boxed sink (`Box<dyn Any>`).
pub trait GroupSink: Any + Send {
    /// As `writev(2)` on a non-blocking socket: `WouldBlock` when the socket is full.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

/// A boxed sink writes through its box (one virtual call per write).
impl<S: GroupSink + ?Sized> GroupSink for Box<S> {
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (**self).try_write_vectored(bufs)
    }
}

/// Why a member was handed back to its connection.
#[derive(Debug)]
pub enum LeaveReason {
    /// The socket took only part of a batch; `unsent` must be written before anything else.
    Behind { unsent: Vec<Bytes> },
    /// The connection asked for its socket back (a control message, or it is closing).
    Recalled,
    /// The publisher ended the stream.
    End,
    /// The socket failed; the connection is over.
    Failed(io::Error),
}

/// What a connection gets back when its viewer leaves the group.
pub struct Leave<S> {
    pub sink: S,
    pub subscription: Box<Subscription>,
    pub reason: LeaveReason,
}

/// A viewer inside a group.
pub struct Member<S> {
    sink: S,
    subscription: Box<Subscription>,
    recall: Arc<AtomicBool>,
    back: oneshot::Sender<Leave<S>>,
}

/// The connection's side of a membership: recall the viewer, or wait until it is handed back.
pub struct Membership<S> {
    recall: Arc<AtomicBool>,
    wake: Arc<Notify>,
    back: oneshot::Receiver<Leave<S>>,
}

impl<S> Membership<S> {
    /// Asks the group to hand the viewer back at the next message boundary.
    pub fn recall(&self) {
        self.recall.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Waits until the viewer is handed back; `None` if its group task is gone.
    pub async fn left(&mut self) -> Option<Leave<S>> {
        (&mut self.back).await.ok()
    }
}

/// Outcome of offering the pending frames to one member.
enum Step {
    Stay,
    Leave(LeaveReason),
}

/// Bytes a pass wrote, per protocol (the bytes-sent metric is labelled by protocol).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sent {
    rtmp: usize,
    flv: usize,
}

impl Sent {
    fn add(&mut self, protocol: Protocol, n: usize) {
        match protocol {
            Protocol::Rtmp => self.rtmp += n,
            Protocol::Flv => self.flv += n,
        }
    }

    #[cfg(test)]
    fn total(&self) -> usize {
        self.rtmp + self.flv
    }
}

impl<S: GroupSink> Member<S> {
    fn step(&mut self, sent: &mut Sent) -> Step {
        if self.recall.load(Ordering::Acquire) {
            return Step::Leave(LeaveReason::Recalled);
        }
        match self.subscription.try_next() {
            None => Step::Stay,
            Some(Batch::End) => Step::Leave(LeaveReason::End),
            Some(Batch::Data(bufs)) => match write_without_waiting(&self.sink, &bufs) {
                Ok((n, unsent)) => {
                    sent.add(self.subscription.protocol(), n);
                    if unsent.is_empty() {
                        self.subscription.written();
                        Step::Stay
                    } else {
                        Step::Leave(LeaveReason::Behind { unsent })
                    }
                }
                Err(e) => Step::Leave(LeaveReason::Failed(e)),
            },
        }
    }

    fn leave(self, reason: LeaveReason) {
        // The connection may be gone already; then the socket simply closes here.
        let _ = self.back.send(Leave {
            sink: self.sink,
            subscription: self.subscription,
            reason,
        });
    }
}

/// Writes as much of `bufs` as the socket takes now. Returns the bytes written and what is left.
fn write_without_waiting<S: GroupSink>(
    sink: &S,
    bufs: &[Bytes],
) -> io::Result<(usize, Vec<Bytes>)> {
    let mut cursor = WriteCursor::default();
    let mut total = 0usize;
    while !cursor.is_done(bufs) {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let count = cursor.slices(bufs, &mut slices);
        let n = match sink.try_write_vectored(&slices[..count]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n;
        cursor.advance(bufs, n);
    }
    Ok((total, cursor.rest(bufs)))
}

/// Offers the pending frames to up to `budget` members from `*next` on, handing back those
/// that must leave; `*next` is where the pass goes on. Returns the bytes written.
fn write_pass_part<S: GroupSink>(
    members: &mut Vec<Member<S>>,
    next: &mut usize,
    budget: usize,
) -> Sent {
    let mut sent = Sent::default();
    let mut offered = 0;
    while *next < members.len() && offered < budget {
        offered += 1;
        match members[*next].step(&mut sent) {
            Step::Stay => *next += 1,
            // The last member moves into this slot and is offered next.
            Step::Leave(reason) => members.swap_remove(*next).leave(reason),
        }
    }
    sent
}

#[cfg(test)]
fn write_pass<S: GroupSink>(members: &mut Vec<Member<S>>) -> usize {
    let mut next = 0;
    write_pass_part(members, &mut next, usize::MAX).total()
}

/// One group: a task and the channel that brings it new members.
struct GroupHandle<S> {
    join: mpsc::UnboundedSender<Member<S>>,
    wake: Arc<Notify>,
    /// Asks for a pass now, answered when it is done.
    flush: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

/// The groups of one stream, started when the first viewer joins.
pub struct FanoutGroups<S> {
    tasks: usize,
    write_delay: Duration,
    groups: Mutex<Vec<GroupHandle<S>>>,
    next: AtomicUsize,
}

impl<S: GroupSink> FanoutGroups<S> {
    /// `tasks` groups per stream; 0 turns groups off (every viewer writes from its own task).
    /// `write_delay`: how long a new frame may wait for the frames after it, so each member
    /// gets them in one write (0: every frame leaves at once).
    pub fn new(tasks: usize, write_delay: Duration) -> Self {
        FanoutGroups {
            tasks,
            write_delay,
            groups: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.tasks > 0
    }

    pub fn write_delay(&self) -> Duration {
        self.write_delay
    }

    /// With a write delay: asks every group for a pass now (frames held for the delay go out);
    /// each receiver answers once its group's pass is done (or is dropped with the group).
    /// Without one nothing is ever held: empty.
    pub fn flush(&self) -> Vec<oneshot::Receiver<()>> {
        if self.write_delay.is_zero() {
            return Vec::new();
        }
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups
            .iter()
            .filter_map(|g| {
                let (tx, rx) = oneshot::channel();
                g.flush.send(tx).ok().map(|()| rx)
            })
            .collect()
    }

    /// Puts a caught-up viewer into a group (round robin). Must run inside a tokio runtime.
    /// `changed` is the stream's frame notification; `metrics` counts the bytes written.
    pub fn join(
        &self,
        sink: S,
        subscription: Box<Subscription>,
        changed: &watch::Sender<u64>,
        metrics: Option<Arc<Metrics>>,
    ) -> Membership<S> {
        let recall = Arc::new(AtomicBool::new(false));
        let (back_tx, back_rx) = oneshot::channel();
        let mut member = Member {
            sink,
            subscription,
            recall: recall.clone(),
            back: back_tx,
        };
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.tasks.max(1);
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if groups.len() <= slot {
                groups.push(spawn_group(
                    changed.subscribe(),
                    self.write_delay,
                    metrics.clone(),
                ));
                continue;
            }
            match groups[slot].join.send(member) {
                Ok(()) => break,
                // That group's task ended (it only does when the stream's hub is going away,
                // or after a panic): start a new one in its place.
                Err(mpsc::error::SendError(m)) => {
                    member = m;
                    groups[slot] =
                        spawn_group(changed.subscribe(), self.write_delay, metrics.clone());
                }
            }
        }
        Membership {
            recall,
            wake: groups[slot].wake.clone(),
            back: back_rx,
        }
    }
}

fn spawn_group<S: GroupSink>(
    changed: watch::Receiver<u64>,
    write_delay: Duration,
    metrics: Option<Arc<Metrics>>,
) -> GroupHandle<S> {
    let (join_tx, join_rx) = mpsc::unbounded_channel();
    let (flush_tx, flush_rx) = mpsc::unbounded_channel();
    let wake = Arc::new(Notify::new());
    tokio::spawn(run_group(
        GroupInbox {
            join: join_rx,
            changed,
            wake: wake.clone(),
            flush: flush_rx,
        },
        write_delay,
        metrics,
    ));
    GroupHandle {
        join: join_tx,
        wake,
        flush: flush_tx,
    }
}

/// What woke a group's task.
enum Woken {
    Frame,
    /// A new member, a recall or a flush: handled without waiting for the write delay.
    Member,
    Closed,
}

/// What a group's task listens to.
struct GroupInbox<S> {
    join: mpsc::UnboundedReceiver<Member<S>>,
    changed: watch::Receiver<u64>,
    wake: Arc<Notify>,
    flush: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
}

/// A group's task: after every new frame, new member, recall or flush, one write pass. With a
/// write delay, a new frame waits up to that long (from its arrival) for the frames after it,
/// and the pass then writes them together: one `writev` and one wake-up for several frames.
async fn run_group<S: GroupSink>(
    inbox: GroupInbox<S>,
    write_delay: Duration,
    metrics: Option<Arc<Metrics>>,
) {
    let GroupInbox {
        mut join,
        mut changed,
        wake,
        mut flush,
    } = inbox;
    let mut members: Vec<Member<S>> = Vec::new();
    // Flushes answered after the next pass.
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    // When the last pass began, and whether a frame came while it ran: such a frame has been
    // waiting since then at most, and its budget counts from there, not from when the pass
    // ended (a pass over thousands of viewers takes tens of ms).
    let mut last_pass_started = tokio::time::Instant::now();
    let mut frame_during_pass = false;
    loop {
        let woken = tokio::select! {
            biased;
            m = join.recv() => match m {
                Some(m) => { members.push(m); Woken::Member }
                None => Woken::Closed,
            },
            f = flush.recv() => match f {
                Some(done) => { flushed.push(done); Woken::Member }
                None => Woken::Closed,
            },
            r = changed.changed() => if r.is_err() { Woken::Closed } else { Woken::Frame },
            _ = wake.notified() => Woken::Member,
        };
        if matches!(woken, Woken::Closed) {
            break;
        }
        if matches!(woken, Woken::Frame) && !write_delay.is_zero() {
            let since = if frame_during_pass {
                last_pass_started
            } else {
                tokio::time::Instant::now()
            };
            let flush_at = since + write_delay;
            // Frames arriving meanwhile only mark the stream changed; a new member, a recall
            // (a control message to send) or a flush ends the wait early.
            let closed = loop {
                tokio::select! {
                    biased;
                    m = join.recv() => match m {
                        Some(m) => members.push(m),
                        None => break true,
                    },
                    f = flush.recv() => match f {
                        Some(done) => { flushed.push(done); break false }
                        None => break true,
                    },
                    _ = wake.notified() => break false,
                    _ = tokio::time::sleep_until(flush_at) => break false,
                }
            };
            if closed {
                break;
            }
        }
        // Every frame so far goes out in this pass.
        changed.borrow_and_update();
        last_pass_started = tokio::time::Instant::now();
        while let Ok(m) = join.try_recv() {
            members.push(m);
        }
        let mut next = 0;
        loop {
            let sent = write_pass_part(&mut members, &mut next, MEMBERS_PER_SLICE);
            if let Some(m) = &metrics {
                for (protocol, n) in [(Protocol::Rtmp, sent.rtmp), (Protocol::Flv, sent.flv)] {
                    if n > 0 {
                        m.add_bytes_sent(protocol, n);
                    }
                }
            }
            if next >= members.len() {
                break;
            }
            // A pass over thousands of viewers takes tens of ms; let handshakes, joins and the
            // HTTP API run in between.
            tokio::task::yield_now().await;
        }
        frame_during_pass = changed.has_changed().unwrap_or(false);
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
    for m in members {
        m.leave(LeaveReason::End);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Hub, HubConfig};
    use crate::media::{MediaKind, MediaMessage};

    /// A socket with room for `room` more bytes.
    #[derive(Default)]
    struct FakeSink {
        written: Mutex<Vec<u8>>,
        /// Calls that wrote something.
        writes: AtomicUsize,
        room: AtomicUsize,
        broken: AtomicBool,
    }

    impl GroupSink for Arc<FakeSink> {
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let mut out = self.written.lock().unwrap();
            let mut n = 0;
            for b in bufs {
                let room = self.room.load(Ordering::SeqCst) - n;
                let take = b.len().min(room);
                out.extend_from_slice(&b[..take]);
                n += take;
            }
            self.room.fetch_sub(n, Ordering::SeqCst);
            if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if n > 0 {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            Ok(n)
        }
    }

    fn sink(room: usize) -> Arc<FakeSink> {
        let s = Arc::new(FakeSink::default());
        s.room.store(room, Ordering::SeqCst);
        s
    }

    fn hub() -> Arc<Hub> {
        Hub::new("live", "g", HubConfig::default(), None)
    }

    fn keyframe(ts: u32) -> MediaMessage {
        MediaMessage::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![0x17, 1, 0, 0, 0, 7, 7]),
        )
    }

    fn member(
        h: &Arc<Hub>,
        sink: Arc<FakeSink>,
    ) -> (Member<Arc<FakeSink>>, Membership<Arc<FakeSink>>) {
        let mut sub = Box::new(h.subscribe(Protocol::Rtmp));
        // Caught up, as a viewer is when its connection hands it to a group.
        while sub.try_next().is_some() {}
        let recall = Arc::new(AtomicBool::new(false));
        let (tx, rx) = oneshot::channel();
        let m = Member {
            sink,
            subscription: sub,
            recall: recall.clone(),
            back: tx,
        };
        let ms = Membership {
            recall,
            wake: Arc::new(Notify::new()),
            back: rx,
        };
        (m, ms)
    }

    fn expected_bytes(h: &Arc<Hub>) -> Vec<u8> {
        let st = h.lock();
        let mut v = Vec::new();
        st.cache
            .collect_from(st.cache.first_seq(), usize::MAX, usize::MAX, |f| {
                v.extend_from_slice(&f.rtmp)
            });
        v
    }

    #[test]
    fn every_member_gets_each_frame_once_and_stays() {
        let h = hub();
        let (a_sink, b_sink) = (sink(1 << 20), sink(1 << 20));
        let (a, _am) = member(&h, a_sink.clone());
        let (b, _bm) = member(&h, b_sink.clone());
        let mut members = vec![a, b];
        h.publish(keyframe(0));
        let n = write_pass(&mut members);
        assert_eq!(members.len(), 2);
        let want = expected_bytes(&h);
        assert_eq!(n, 2 * want.len());
        assert_eq!(*a_sink.written.lock().unwrap(), want);
        assert_eq!(*b_sink.written.lock().unwrap(), want);
        assert_eq!(write_pass(&mut members), 0, "nothing new: nothing written");
    }

    #[test]
    fn http_flv_members_get_the_shared_chunks_and_count_as_flv() {
        let h = hub();
        let (rtmp_sink, flv_sinks) = (sink(1 << 20), [sink(1 << 20), sink(1 << 20)]);
        let (r, _rm) = member(&h, rtmp_sink.clone());
        let mut members = vec![r];
        let mut handles = Vec::new();
        for s in &flv_sinks {
            let mut sub = Box::new(h.subscribe(Protocol::Flv));
            sub.take_http_chunks();
            while sub.try_next().is_some() {}
            let (m, ms) = member(&h, s.clone());
            members.push(Member {
                subscription: sub,
                ..m
            });
            handles.push(ms);
        }
        h.publish(keyframe(0));
        let mut next = 0;
        let sent = write_pass_part(&mut members, &mut next, usize::MAX);
        assert_eq!(members.len(), 3);
        let st = h.lock();
        let mut chunk = Vec::new();
        st.cache
            .collect_from(st.cache.first_seq(), usize::MAX, usize::MAX, |f| {
                chunk.extend_from_slice(&f.flv_chunk)
            });
        drop(st);
        assert!(
            chunk.starts_with(b"16\r\n"),
            "one HTTP chunk per tag (22 bytes)"
        );
        for s in &flv_sinks {
            assert_eq!(*s.written.lock().unwrap(), chunk);
        }
        assert_eq!(sent.flv, 2 * chunk.len());
        assert_eq!(sent.rtmp, expected_bytes(&h).len());
    }

    #[test]
    fn a_pass_in_slices_reaches_every_member_once() {
        let h = hub();
        let sinks: Vec<_> = (0..3).map(|_| sink(1 << 20)).collect();
        let mut members = Vec::new();
        let mut handles = Vec::new();
        for s in &sinks {
            let (m, ms) = member(&h, s.clone());
            members.push(m);
            handles.push(ms);
        }
        h.publish(keyframe(0));
        let want = expected_bytes(&h);
        let mut next = 0;
        assert_eq!(
            write_pass_part(&mut members, &mut next, 2).total(),
            2 * want.len()
        );
        assert_eq!(next, 2);
        assert!(
            sinks[2].written.lock().unwrap().is_empty(),
            "not reached yet"
        );
        assert_eq!(
            write_pass_part(&mut members, &mut next, 2).total(),
            want.len()
        );
        assert_eq!(next, 3);
        for s in &sinks {
            assert_eq!(*s.written.lock().unwrap(), want);
        }
    }

    #[test]
    fn full_socket_hands_the_viewer_back_with_the_rest_of_the_frame() {
        let h = hub();
        let s = sink(5);
        let (m, mut ms) = member(&h, s.clone());
        let mut members = vec![m];
        h.publish(keyframe(0));
        write_pass(&mut members);
        assert!(members.is_empty());
        let leave = block_on(ms.left()).expect("handed back");
        let LeaveReason::Behind { unsent } = leave.reason else {
            panic!("expected Behind, got {:?}", leave.reason);
        };
        let mut all = s.written.lock().unwrap().clone();
        assert_eq!(all.len(), 5);
        for b in unsent {
            all.extend_from_slice(&b);
        }
        assert_eq!(
            all,
            expected_bytes(&h),
            "written + unsent is the frame, in order"
        );
    }

    #[test]
    fn socket_with_no_room_gives_back_the_whole_batch() {
        let h = hub();
        let (m, mut ms) = member(&h, sink(0));
        let mut members = vec![m];
        h.publish(keyframe(0));
        write_pass(&mut members);
        let leave = block_on(ms.left()).expect("handed back");
        match leave.reason {
            LeaveReason::Behind { unsent } => {
                assert_eq!(unsent.concat(), expected_bytes(&h));
            }
            other => panic!("expected Behind, got {other:?}"),
        }
    }

    #[test]
    fn recall_failure_and_end_of_stream_each_hand_the_viewer_back() {
        let h = hub();
        let broken = sink(1 << 20);
        broken.broken.store(true, Ordering::SeqCst);
        let (recalled, mut recalled_ms) = member(&h, sink(1 << 20));
        let (failing, mut failing_ms) = member(&h, broken);
        let mut members = vec![recalled, failing];
        recalled_ms.recall();
        h.publish(keyframe(0));
        write_pass(&mut members);
        assert!(members.is_empty());
        let r = block_on(recalled_ms.left()).expect("recalled");
        assert!(matches!(r.reason, LeaveReason::Recalled));
        assert!(
            r.sink.written.lock().unwrap().is_empty(),
            "recalled before writing"
        );
        let f = block_on(failing_ms.left()).expect("failed");
        assert!(matches!(f.reason, LeaveReason::Failed(_)));

        let (ending, mut ending_ms) = member(&h, sink(1 << 20));
        let mut members = vec![ending];
        h.end_stream();
        write_pass(&mut members);
        let e = block_on(ending_ms.left()).expect("ended");
        assert!(matches!(e.reason, LeaveReason::End));
    }

    #[tokio::test]
    async fn group_task_writes_new_frames_and_returns_a_recalled_viewer() {
        let h = hub();
        let groups = FanoutGroups::<Arc<FakeSink>>::new(2, Duration::ZERO);
        let s = sink(1 << 20);
        let mut sub = Box::new(h.subscribe(Protocol::Rtmp));
        while sub.try_next().is_some() {}
        let mut ms = groups.join(s.clone(), sub, &h.changed, None);
        h.publish(keyframe(0));
        let want = expected_bytes(&h);
        for _ in 0..200 {
            if s.written.lock().unwrap().len() >= want.len() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(*s.written.lock().unwrap(), want);
        ms.recall();
        let leave = tokio::time::timeout(std::time::Duration::from_secs(5), ms.left())
            .await
            .expect("handed back in time")
            .expect("group alive");
        assert!(matches!(leave.reason, LeaveReason::Recalled));
    }

    /// Three frames 10 ms apart, then 100 ms of quiet: what the sink has after each step.
    async fn three_frames_10ms_apart(write_delay: Duration) -> Vec<(usize, usize)> {
        let h = hub();
        let groups = FanoutGroups::<Arc<FakeSink>>::new(1, write_delay);
        let s = sink(1 << 20);
        let mut sub = Box::new(h.subscribe(Protocol::Rtmp));
        while sub.try_next().is_some() {}
        let _ms = groups.join(s.clone(), sub, &h.changed, None);
        // The group task takes its new member first.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut seen = Vec::new();
        let look = |s: &Arc<FakeSink>| {
            (
                s.written.lock().unwrap().len(),
                s.writes.load(Ordering::SeqCst),
            )
        };
        for ts in [0, 10, 20] {
            h.publish(if ts == 0 {
                keyframe(ts)
            } else {
                interframe(ts)
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
            seen.push(look(&s));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen.push(look(&s));
        assert_eq!(s.written.lock().unwrap().as_slice(), expected_bytes(&h));
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_write_delay_each_frame_leaves_at_once() {
        let seen = three_frames_10ms_apart(Duration::ZERO).await;
        let writes: Vec<usize> = seen.iter().map(|(_, w)| *w).collect();
        assert_eq!(writes, vec![1, 2, 3, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_delay_holds_a_frame_for_the_next_ones_and_sends_them_in_one_write() {
        let seen = three_frames_10ms_apart(Duration::from_millis(25)).await;
        // Nothing leaves before the first frame's 25 ms are up (at 10 and 20 ms); at 30 ms
        // all three have left, in one write; nothing is held past the budget.
        assert_eq!(seen[0], (0, 0));
        assert_eq!(seen[1], (0, 0));
        assert!(seen[2].0 > 0 && seen[2].1 == 1, "{seen:?}");
        assert_eq!(seen[3].1, 1, "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_frame_never_waits_past_the_budget() {
        // One frame alone: written 40 ms after it came, not when the next one comes.
        let h = hub();
        let groups = FanoutGroups::<Arc<FakeSink>>::new(1, Duration::from_millis(40));
        let s = sink(1 << 20);
        let mut sub = Box::new(h.subscribe(Protocol::Rtmp));
        while sub.try_next().is_some() {}
        let _ms = groups.join(s.clone(), sub, &h.changed, None);
        tokio::time::sleep(Duration::from_millis(1)).await;
        h.publish(keyframe(0));
        tokio::time::sleep(Duration::from_millis(39)).await;
        assert!(s.written.lock().unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(s.written.lock().unwrap().as_slice(), expected_bytes(&h));
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_that_comes_during_a_long_pass_is_held_from_the_pass_start() {
        // Two slices of members: the group yields between them, and the test lets 30 ms go
        // by there, as a pass over thousands of viewers takes that long.
        let budget = Duration::from_millis(40);
        let h = hub();
        let groups = FanoutGroups::<Arc<FakeSink>>::new(1, budget);
        let sinks: Vec<Arc<FakeSink>> = (0..=MEMBERS_PER_SLICE).map(|_| sink(1 << 20)).collect();
        let _members: Vec<_> = sinks
            .iter()
            .map(|s| {
                let mut sub = Box::new(h.subscribe(Protocol::Rtmp));
                while sub.try_next().is_some() {}
                groups.join(s.clone(), sub, &h.changed, None)
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1)).await;
        h.publish(keyframe(0));
        let first_frame = expected_bytes(&h).len();
        // Step the clock until the held frame's pass has written its first slice.
        let mut waited = Duration::ZERO;
        while sinks[0].written.lock().unwrap().is_empty() {
            assert!(waited < budget * 2, "the first frame was never written");
            tokio::time::advance(Duration::from_millis(1)).await;
            waited += Duration::from_millis(1);
        }
        let last = &sinks[MEMBERS_PER_SLICE];
        assert!(last.written.lock().unwrap().is_empty(), "mid-pass");
        let pass_started = tokio::time::Instant::now();
        h.publish(interframe(33));
        tokio::time::advance(Duration::from_millis(30)).await;
        tokio::task::yield_now().await;
        assert_eq!(last.written.lock().unwrap().as_slice(), expected_bytes(&h));
        // The second frame has waited since the pass began: it leaves `budget` after that,
        // not `budget` after the pass ended (which would be 30 ms later).
        assert_eq!(sinks[0].written.lock().unwrap().len(), first_frame);
        tokio::time::sleep_until(pass_started + budget - Duration::from_millis(1)).await;
        assert_eq!(sinks[0].written.lock().unwrap().len(), first_frame);
        tokio::time::sleep_until(pass_started + budget + Duration::from_millis(1)).await;
        assert_eq!(
            sinks[0].written.lock().unwrap().as_slice(),
            expected_bytes(&h)
        );
    }

    fn interframe(ts: u32) -> MediaMessage {
        MediaMessage::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![0x27, 1, 0, 0, 0, 8, 8]),
        )
    }

    /// Oneshot receivers are ready once sent; no runtime needed to take the value.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(f)
    }
}
