//! Tests of loading and validating the configuration.

use super::*;

#[test]
fn defaults_are_valid() {
    let c = Config::load(Flags::default()).expect("defaults");
    assert_eq!(c.http_listen, "127.0.0.1:8080".parse().expect("addr"));
    assert_eq!((c.rtc_port_min, c.rtc_port_max), (40000, 40999));
    assert!(c.cores >= 1);
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(Flags, &str)> = vec![
        (
            Flags {
                rtc_ports: Some("5-1".into()),
                ..Flags::default()
            },
            "rtc_ports",
        ),
        (
            Flags {
                rtc_ports: Some("abc".into()),
                ..Flags::default()
            },
            "rtc_ports",
        ),
        (
            Flags {
                http_listen: Some("nope".into()),
                ..Flags::default()
            },
            "http_listen",
        ),
        (
            Flags {
                announced_ip: Some("0.0.0.0".into()),
                ..Flags::default()
            },
            "announced_ip",
        ),
        (
            Flags {
                cores: Some("0".into()),
                ..Flags::default()
            },
            "cores",
        ),
        (
            Flags {
                cores: Some("9999".into()),
                ..Flags::default()
            },
            "cores",
        ),
        (
            Flags {
                tls_cert: Some("/nonexistent".into()),
                ..Flags::default()
            },
            "tls_key",
        ),
        (
            Flags {
                consent_timeout: Some("1".into()),
                ..Flags::default()
            },
            "consent_timeout",
        ),
        (
            Flags {
                config: Some("/nonexistent.toml".into()),
                ..Flags::default()
            },
            "config",
        ),
        (
            Flags {
                io_backend: Some("dpdk".into()),
                ..Flags::default()
            },
            "io_backend",
        ),
    ];
    for (flags, field) in cases {
        let e = Config::load(flags).expect_err(field);
        assert_eq!(e.field, field, "{e}");
    }
}

#[test]
fn ttl_parses_units() {
    assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
    assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86400)));
    assert_eq!(parse_ttl("42"), Ok(Duration::from_secs(42)));
    assert!(parse_ttl("0s").is_err() && parse_ttl("1y").is_err() && parse_ttl("999d").is_err());
}

#[test]
fn file_values_apply_and_flags_override_them() {
    let dir = std::env::temp_dir().join(format!("sfu-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("sfu.toml");
    std::fs::write(
        &path,
        "rtc_ports = \"41000-41010\"\nannounced_ip = \"127.0.0.2\"\ncores = 1\n",
    )
    .expect("write");
    let c = Config::load(Flags {
        config: Some(path.clone()),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!((c.rtc_port_min, c.rtc_port_max, c.cores), (41000, 41010, 1));
    let c = Config::load(Flags {
        config: Some(path.clone()),
        announced_ip: Some("127.0.0.3".into()),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(c.announced_ip.to_string(), "127.0.0.3");
    std::fs::write(&path, "bogus_field = 1\n").expect("write");
    let e = Config::load(Flags {
        config: Some(path),
        ..Flags::default()
    })
    .expect_err("unknown field");
    assert!(e.reason.contains("bogus_field"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_node_alone_has_no_cluster_and_a_clusters_settings_are_checked() {
    assert_eq!(Config::load(Flags::default()).expect("alone").cluster, None);
    let node = |f: Flags| Config::load(f).map(|c| c.cluster.expect("a cluster"));
    let c = node(Flags {
        redis: Some("redis://127.0.0.1:6379".into()),
        announced_ip: Some("10.0.0.5".into()),
        http_listen: Some("0.0.0.0:8443".into()),
        ..Flags::default()
    })
    .expect("defaults");
    assert!(c.node_id.ends_with(":8443"), "{}", c.node_id);
    assert_eq!(c.node_address, "10.0.0.5".parse::<IpAddr>().expect("ip"));
    assert_eq!(c.public_url, "http://10.0.0.5:8443");
    assert_eq!(c.fanout, 4);
    let c = node(Flags {
        redis: Some("redis://r:6379/2".into()),
        node_id: Some("b".into()),
        node_address: Some("127.0.0.2".into()),
        public_url: Some("https://b.example/".into()),
        node_capacity: Some("500".into()),
        relay_fanout: Some("2".into()),
        ..Flags::default()
    })
    .expect("given");
    assert_eq!(
        (
            c.node_id.as_str(),
            c.public_url.as_str(),
            c.capacity,
            c.fanout
        ),
        ("b", "https://b.example", 500, 2)
    );
    let field = |f: Flags| Config::load(f).err().map(|e| e.field);
    let with = |f: Flags| Flags {
        redis: Some("redis://127.0.0.1:6379".into()),
        ..f
    };
    for (flags, want) in [
        (
            Flags {
                redis: Some("http://x".into()),
                ..Flags::default()
            },
            "redis",
        ),
        (
            with(Flags {
                node_id: Some("a b".into()),
                ..Flags::default()
            }),
            "node_id",
        ),
        (
            with(Flags {
                node_address: Some("0.0.0.0".into()),
                ..Flags::default()
            }),
            "node_address",
        ),
        (
            with(Flags {
                public_url: Some("ftp://x".into()),
                ..Flags::default()
            }),
            "public_url",
        ),
        (
            with(Flags {
                relay_fanout: Some("0".into()),
                ..Flags::default()
            }),
            "relay_fanout",
        ),
        (
            Flags {
                node_id: Some("a".into()),
                ..Flags::default()
            },
            "node_id",
        ),
    ] {
        assert_eq!(field(flags), Some(want));
    }
}

#[test]
fn reach_settings_load_from_the_file_and_flags_and_bad_ones_are_named() {
    let dir = std::env::temp_dir().join(format!("sfu-config-reach-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("sfu.toml");
    std::fs::write(
        &path,
        "cores = 1\nice_tcp = false\nrtc_tcp_port = 9000\ndatachannel_max_messages_per_second = 50\n\
         [[ice_servers]]\nurls = [\"turn:t.example:3478\"]\nsecret = \"s\"\n",
    )
    .expect("write");
    let c = Config::load(Flags {
        config: Some(path.clone()),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(c.ice_tcp, None, "off");
    assert_eq!(c.data_channels.max_messages_per_sec, 50);
    assert_eq!(c.ice_servers.len(), 1);
    assert_eq!(c.ice_servers[0].secret.as_deref(), Some("s"));
    let c = Config::load(Flags {
        config: Some(path.clone()),
        ice_tcp: Some("on".into()),
        ice_servers: Some(r#"[{urls = ["stun:s.example"]}]"#.into()),
        ..Flags::default()
    })
    .expect("load");
    assert_eq!(c.ice_tcp, Some(9000));
    assert_eq!(c.ice_servers[0].urls, vec!["stun:s.example".to_string()]);
    for (flags, field) in [
        (
            Flags {
                ice_tcp: Some("maybe".into()),
                ..Flags::default()
            },
            "ice_tcp",
        ),
        (
            Flags {
                ice_servers: Some(r#"[{urls = ["turn:x"]}]"#.into()),
                ..Flags::default()
            },
            "ice_servers",
        ),
        (
            Flags {
                datachannel_max_bytes_per_second: Some("0".into()),
                ..Flags::default()
            },
            "datachannel_max_bytes_per_second",
        ),
    ] {
        let e = Config::load(Flags {
            cores: Some("1".into()),
            ..flags
        })
        .expect_err(field);
        assert!(e.to_string().contains(field), "{e}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
