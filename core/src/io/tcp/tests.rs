//! The ICE-TCP server on loopback: partial and coalesced frames, a
//! too-long frame, a peer that never reads, idle connections, and closes.

use super::*;
use std::net::TcpStream;

fn server() -> TcpServer {
    TcpServer::bind("127.0.0.1:0".parse().expect("addr")).expect("bind")
}

fn connect(s: &TcpServer) -> TcpStream {
    let c = TcpStream::connect(s.local_addr()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    c
}

/// Polls until `want` frames arrived (at most 2 s): (conn, frame).
fn frames(s: &mut TcpServer, want: usize) -> Vec<(TcpConnId, Vec<u8>)> {
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(2);
    while got.len() < want && Instant::now() < end {
        s.poll(Instant::now(), &mut |id, _, _, f| {
            got.push((id, f.to_vec()))
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    got
}

fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        assert!(framing::encode(p, &mut out));
    }
    out
}

#[test]
fn frames_cut_anywhere_and_coalesced_arrive_whole() {
    let mut s = server();
    let mut c = connect(&s);
    let stream = framed(&[b"one", &[7u8; 1200], b"three"]);
    // Byte by byte for the first frame and a bit, then the rest in one
    // write.
    let mut got = Vec::new();
    for b in &stream[..8] {
        c.write_all(&[*b]).expect("write");
        c.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(1));
        s.poll(Instant::now(), &mut |_, _, _, f| got.push(f.to_vec()));
    }
    c.write_all(&stream[8..]).expect("write");
    got.extend(frames(&mut s, 3 - got.len()).into_iter().map(|(_, f)| f));
    assert_eq!(
        got,
        vec![b"one".to_vec(), vec![7u8; 1200], b"three".to_vec()]
    );
}

#[test]
fn an_unbound_connection_announcing_a_huge_frame_is_closed_at_once() {
    let mut s = server();
    let mut c = connect(&s);
    c.write_all(&[0xff, 0xff, 1, 2, 3]).expect("write");
    let end = Instant::now() + Duration::from_secs(2);
    let mut closed = None;
    while closed.is_none() && Instant::now() < end {
        s.poll(Instant::now(), &mut |_, _, _, _| panic!("no frame"));
        closed = s.poll_closed();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(closed.map(|(_, _, why)| why), Some(TcpClose::Stalled));
    assert!(s.is_empty());
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "closed by the server");
}

#[test]
fn a_bound_connection_takes_a_65535_byte_frame() {
    let mut s = server();
    let mut c = connect(&s);
    c.write_all(&framed(&[b"stun"])).expect("write");
    let (id, _) = frames(&mut s, 1).pop().expect("a frame");
    s.bind_room(id, 3);
    let big = vec![5u8; MAX_FRAME];
    c.write_all(&framed(&[&big])).expect("write");
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(2);
    while got.is_empty() && Instant::now() < end {
        s.poll(Instant::now(), &mut |_, _, room, f| {
            assert_eq!(room, Some(3));
            got.push(f.len());
        });
    }
    assert_eq!(got, vec![MAX_FRAME]);
}

#[test]
fn a_peer_that_never_reads_is_closed_not_buffered_forever() {
    let mut s = server();
    let mut c = connect(&s);
    c.write_all(&framed(&[b"stun"])).expect("write");
    let (id, _) = frames(&mut s, 1).pop().expect("a frame");
    s.bind_room(id, 0);
    // The kernel's buffers take a few MB; then ours fills to MAX_OUT.
    let frame = vec![1u8; 60_000];
    let mut sent = 0usize;
    while s.send(id, &frame) {
        sent += frame.len();
        assert!(sent < 512 << 20, "never closed");
    }
    let closed: Vec<_> = std::iter::from_fn(|| s.poll_closed()).collect();
    assert_eq!(closed, vec![(id, Some(0), TcpClose::Stalled)]);
    drop(c);
}

#[test]
fn idle_connections_are_closed_on_the_ice_timeout_and_written_frames_arrive() {
    let mut s = server();
    let idle: Vec<TcpStream> = (0..50).map(|_| connect(&s)).collect();
    let mut live = connect(&s);
    live.write_all(&framed(&[b"stun"])).expect("write");
    let (id, _) = frames(&mut s, 1).pop().expect("a frame");
    s.bind_room(id, 1);
    let end = Instant::now() + Duration::from_secs(2);
    while s.len() < 51 && Instant::now() < end {
        s.poll(Instant::now(), &mut |_, _, _, _| {});
    }
    assert_eq!(s.len(), 51);
    let later = Instant::now() + Duration::from_secs(16);
    assert!(
        s.next_expiry(Duration::from_secs(15))
            .is_some_and(|t| t <= later)
    );
    s.expire(later, Duration::from_secs(15));
    assert_eq!(s.len(), 1, "the bound one stays");
    let closed: Vec<_> = std::iter::from_fn(|| s.poll_closed()).collect();
    assert_eq!(closed.len(), 50);
    assert!(
        closed
            .iter()
            .all(|(_, room, why)| room.is_none() && *why == TcpClose::Idle)
    );
    assert!(s.send(id, b"reply"));
    let mut buf = [0u8; 7];
    live.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"\x00\x05reply");
    drop(idle);
}
