//! The directory against a real `redis-server`, started on a free port by
//! each test ([`RedisServer`]); every test has a hard timeout.

use std::future::Future;
use std::time::Duration;

use super::server::RedisServer;
use super::*;

/// Runs `f` against a fresh server, within 30 s.
fn with_redis<F, Fut>(f: F)
where
    F: FnOnce(RedisServer, Directory) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = RedisServer::start().expect("redis-server (apt-get install redis-server)");
    rt.block_on(async move {
        let dir = Directory::new(&server.url()).expect("url");
        tokio::time::timeout(Duration::from_secs(30), f(server, dir))
            .await
            .expect("the test timed out");
    });
}

fn node(id: &str) -> NodeRecord {
    records::sample_node(id)
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

#[test]
fn a_node_that_stops_heartbeating_leaves_the_registry_when_its_record_expires() {
    with_redis(|server, dir| async move {
        dir.heartbeat(&node("a"), &[]).await.expect("a");
        dir.heartbeat(&node("b"), &[]).await.expect("b");
        let ids = |v: Vec<NodeRecord>| v.into_iter().map(|n| n.id).collect::<Vec<_>>();
        assert_eq!(ids(dir.nodes().await.expect("nodes")), ["a", "b"]);
        assert_eq!(
            dir.node("a").await.expect("a").map(|n| n.id),
            Some("a".into())
        );
        // The record's expiry is the heartbeat's: ≤ NODE_TTL.
        let mut c = raw(&server).await;
        let ttl: i64 = c.pttl("sfu:node:b").await.expect("pttl");
        assert!(ttl > 0 && ttl <= NODE_TTL.as_millis() as i64, "{ttl}");
        // b stops: made to expire now (as NODE_TTL after its last beat).
        let _: () = c.pexpire("sfu:node:b", 1).await.expect("pexpire");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(ids(dir.nodes().await.expect("nodes")), ["a"]);
        let left: Vec<String> = c.smembers("sfu:nodes").await.expect("set");
        assert_eq!(left, ["a"], "pruned from the set");
        dir.leave("a").await.expect("leave");
        assert!(dir.nodes().await.expect("nodes").is_empty());
    });
}

#[test]
fn a_corrupt_or_foreign_node_record_is_ignored() {
    with_redis(|server, dir| async move {
        dir.heartbeat(&node("good"), &[]).await.expect("good");
        let mut c = raw(&server).await;
        let forged = serde_json::to_vec(&node("other")).expect("json");
        let _: () = redis::pipe()
            .set("sfu:node:junk", "not json")
            .sadd("sfu:nodes", "junk")
            .set("sfu:node:mask", forged)
            .sadd("sfu:nodes", "mask")
            .set("sfu:node:big", vec![b'x'; records::MAX_RECORD + 1])
            .sadd("sfu:nodes", "big")
            .query_async(&mut c)
            .await
            .expect("write");
        let ids: Vec<String> = dir
            .nodes()
            .await
            .expect("nodes")
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, ["good"]);
        assert_eq!(dir.node("junk").await.expect("junk"), None);
        assert_eq!(dir.node("mask").await.expect("mask"), None);
        let _: () = c
            .hset("sfu:room:r", "origin", "bad id!")
            .await
            .expect("hset");
        assert_eq!(dir.room("r").await.expect("room"), RoomRecord::default());
    });
}

#[test]
fn one_node_at_a_time_holds_a_rooms_lock() {
    with_redis(|server, dir| async move {
        let _alive = server;
        let ttl = Duration::from_secs(5);
        let held = dir.lock_room("r", ttl).await.expect("lock").expect("free");
        assert!(dir.lock_room("r", ttl).await.expect("lock").is_none());
        assert!(dir.lock_room("s", ttl).await.expect("lock").is_some());
        dir.unlock_room(held).await.expect("unlock");
        let again = dir
            .lock_room("r", ttl)
            .await
            .expect("lock")
            .expect("free again");
        // An expired lock taken by another is not released by its old holder.
        let short = dir
            .lock_room("t", Duration::from_millis(30))
            .await
            .expect("lock")
            .expect("free");
        tokio::time::sleep(Duration::from_millis(60)).await;
        let theirs = dir
            .lock_room("t", ttl)
            .await
            .expect("lock")
            .expect("expired");
        dir.unlock_room(short).await.expect("unlock");
        assert!(
            dir.lock_room("t", ttl).await.expect("lock").is_none(),
            "still theirs"
        );
        dir.unlock_room(theirs).await.expect("unlock");
        dir.unlock_room(again).await.expect("unlock");
    });
}

#[test]
fn a_room_record_holds_its_origin_and_a_tree_of_edges() {
    with_redis(|server, dir| async move {
        dir.set_origin("r", "a").await.expect("origin");
        dir.set_edge("r", "b", "a").await.expect("b");
        dir.set_edge("r", "c", "a").await.expect("c");
        dir.set_edge("r", "d", "b").await.expect("d");
        let rec = dir.room("r").await.expect("room");
        assert_eq!(rec.origin.as_deref(), Some("a"));
        assert_eq!(rec.parent_for_new_edge(2), Some("b"));
        let mut c = raw(&server).await;
        let ttl: i64 = c.pttl("sfu:room:r").await.expect("pttl");
        assert!(ttl > 0 && ttl <= ROOM_TTL.as_millis() as i64);
        // The origin's node goes; edge b takes the room over.
        dir.leave_room("r", "a").await.expect("leave");
        dir.set_origin("r", "b").await.expect("origin");
        let rec = dir.room("r").await.expect("room");
        assert_eq!(rec.origin.as_deref(), Some("b"));
        assert_eq!(rec.parent("b"), None, "no longer an edge");
        assert_eq!(rec.parent("d"), Some("b"));
        dir.leave_room("r", "d").await.expect("leave");
        assert_eq!(dir.room("r").await.expect("room").parent("d"), None);
        // A heartbeat keeps the rooms of its node alive.
        let _: () = c.pexpire("sfu:room:r", 5000).await.expect("pexpire");
        dir.heartbeat(&node("b"), &[("r".into(), None)])
            .await
            .expect("beat");
        let ttl: i64 = c.pttl("sfu:room:r").await.expect("pttl");
        assert!(ttl > 5000, "refreshed: {ttl}");
        // Redis lost the room: the heartbeats of its nodes write it again.
        let _: () = c.del("sfu:room:r").await.expect("del");
        dir.heartbeat(&node("b"), &[("r".into(), None)])
            .await
            .expect("beat");
        dir.heartbeat(&node("e"), &[("r".into(), Some("b".into()))])
            .await
            .expect("beat");
        let rec = dir.room("r").await.expect("room");
        assert_eq!(rec.origin.as_deref(), Some("b"));
        assert_eq!(rec.parent("e"), Some("b"));
    });
}

#[test]
fn two_nodes_get_one_pair_secret_whichever_asks_first() {
    with_redis(|server, dir| async move {
        let ab = dir.pair_secret("a", "b").await.expect("secret");
        assert_eq!(ab.len(), 32);
        assert_eq!(dir.pair_secret("b", "a").await.expect("secret"), ab);
        assert_ne!(dir.pair_secret("a", "c").await.expect("secret"), ab);
        let mut c = raw(&server).await;
        let _: () = c.set("sfu:pair:x|y", "short").await.expect("set");
        assert!(matches!(
            dir.pair_secret("y", "x").await,
            Err(DirectoryError::Record(_))
        ));
    });
}

#[test]
fn a_subscription_gets_messages_and_comes_back_after_redis_restarts() {
    with_redis(|mut server, dir| async move {
        let mut sub = dir.subscribe(vec![inbox("a")]);
        // Wait until the subscription is in place.
        let mut n = 0;
        while dir.publish(&inbox("a"), b"hello").await.expect("publish") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (ch, msg) = sub.rx.recv().await.expect("message");
        assert_eq!(
            (ch.as_str(), msg.as_slice()),
            ("sfu:inbox:a", &b"hello"[..])
        );
        // Redis goes away: calls fail at once, and nothing panics.
        server.stop();
        let t = std::time::Instant::now();
        assert!(matches!(
            dir.nodes().await,
            Err(DirectoryError::Unavailable(_))
        ));
        assert!(t.elapsed() < CALL_TIMEOUT * 3, "{:?}", t.elapsed());
        // Back: the connection and the subscription are made again.
        server.restart().expect("restart");
        loop {
            match dir.publish(&inbox("a"), b"again").await {
                Ok(k) if k > 0 => break,
                _ => {
                    n += 1;
                    assert!(n < 500, "never resubscribed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        let (_, msg) = sub.rx.recv().await.expect("message");
        assert_eq!(msg, b"again");
        assert!(dir.nodes().await.is_ok(), "calls work again");
    });
}
