//! Joining: a participant's offer becomes its WebRtcTransport, its tracks
//! Producers (one encoding, or simulcast by RID, RFC 8853), and our answer.

use super::*;

pub(super) fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Room {
    pub(super) async fn join(
        &mut self,
        conn: ConnHandle,
        join: u64,
        (name, role, via): (String, Role, Via),
        offer: PeerSdp,
    ) -> Result<(), Fail> {
        let limits = self.ctx.cfg.limits;
        let (count, max, what) = match role {
            Role::Participant => (
                self.participants.participant_count(),
                limits.participants_per_room,
                "participants",
            ),
            Role::Viewer => (
                self.participants.viewers(),
                limits.viewers_per_room,
                "viewers",
            ),
        };
        if count >= max {
            return Err(Fail(ServerMsg::error(
                "room-full",
                format!("room {:?} has its maximum of {max} {what}", self.name),
            )));
        }
        let (router, port) = self.place(role).await?;
        self.attach().await?;
        let Some(worker) = self.shard(router).map(|s| s.worker.clone()) else {
            return Err(Fail(ServerMsg::error(
                "server-error",
                "the room's router vanished",
            )));
        };
        // The worker's ICE-TCP port (RFC 6544), as it bound it, for a
        // WebRTC peer.
        let tcp_port = u16::try_from(worker.counters.ice_tcp_port.get())
            .ok()
            .filter(|p| *p != 0 && !via.is_direct());
        let (dtls_role, setup) = if offer.setup == "passive" {
            (DtlsRole::Client, "active")
        } else {
            (DtlsRole::Server, "passive")
        };
        let cfg = &self.ctx.cfg;
        let local = LocalParams {
            ice_ufrag: random_token(8),
            ice_pwd: random_token(24),
            fingerprint: cfg.fingerprint.clone(),
            ip: cfg.announced_ip,
            port,
            tcp_port,
            session_id: rand::random::<u32>() as u64,
            session_version: 1,
            ice_lite: true,
        };
        // Data channels (RFC 8831) for a participant's WebRTC transport: the
        // first data-channel section of its offer. A viewer publishes
        // nothing, channels included.
        let data = offer
            .data_channels()
            .filter(|_| role == Role::Participant && !via.is_direct())
            .map(|(m, sctp)| (m.mid.clone(), sctp));
        let params = TransportParams {
            local_ufrag: local.ice_ufrag.clone(),
            local_pwd: local.ice_pwd.clone(),
            remote_fingerprint: offer.fingerprint,
            dtls_role,
            sctp_max_message_size: data.as_ref().map(|(_, s)| s.max_message_size),
        };
        let transport = if via.is_direct() {
            call(&worker, |reply| Command::CreateDirectTransport {
                router,
                tap: None,
                reply,
            })
            .await?
        } else {
            call(&worker, |reply| Command::CreateTransport {
                router,
                params,
                reply,
            })
            .await?
        };
        let mut neg = Negotiation::new(Vec::new(), &offer);
        let mut own = Vec::new();
        let mut published = Vec::new();
        if let Via::Whep { participant } = via {
            match self
                .whep_sections(router, transport, &offer, participant, &mut neg)
                .await
            {
                Ok(media) => own = media,
                Err(e) => {
                    self.command(router, Command::CloseTransport { router, transport });
                    return Err(e);
                }
            }
        }
        let mid_ext_id = offer
            .media
            .iter()
            .find_map(|m| m.extensions.get(Extension::Mid));
        for m in offer
            .media
            .iter()
            .filter(|_| !matches!(via, Via::Whep { .. }))
        {
            if let Some((mid, sctp)) = data.as_ref().filter(|(mid, _)| *mid == m.mid) {
                own.push(LocalMedia {
                    kind: None,
                    rejected: false,
                    sctp_port: Some(sctp.port),
                    ..LocalMedia::closed(mid, None)
                });
                continue;
            }
            match self
                .publish_section(router, transport, m, mid_ext_id, false, via.is_direct())
                .await
            {
                Ok((media, track)) => {
                    own.push(media);
                    published.extend(track);
                }
                Err(e) => {
                    self.command(router, Command::CloseTransport { router, transport });
                    for t in &published {
                        self.close_mirrors(t);
                    }
                    return Err(e);
                }
            }
        }
        let answer = sdp::write(&local, setup, &own);
        let pid = self.ctx.next_pid.fetch_add(1, Ordering::Relaxed);
        tracing::info!(room = %self.name, participant = pid, name = %name, role = role.as_str(), via = via.as_str(), tracks = published.len(), "participant joined");
        if via.is_direct() {
            conn.push(Outgoing::Direct(DirectLink {
                worker: worker.clone(),
                router,
                transport,
            }));
        }
        conn.send(&ServerMsg::Answer {
            sdp: answer,
            id: format!("p{pid}"),
            room: self.name.clone(),
            ice_servers: crate::ice_servers::for_member(
                &self.ctx.cfg.ice_servers,
                &format!("p{pid}"),
                std::time::SystemTime::now(),
            ),
        });
        neg.set_own(own);
        self.participants.insert(Participant {
            id: pid,
            name,
            role,
            via,
            conn,
            join,
            router,
            transport,
            local,
            published,
            neg,
            hidden: std::collections::HashSet::new(),
            widths: std::collections::HashMap::new(),
            setup,
            audio_muted: false,
            video_off: false,
        });
        self.set_count();
        let now = Instant::now();
        self.send_snapshot(pid);
        // The joiner receives every participant's tracks, here and on
        // other nodes (a WHIP publisher receives nothing; a WHEP viewer's
        // tracks are in its answer).
        if via.negotiates() {
            for other in self.participants.other_participants(pid) {
                self.subscribe_all(pid, other).await;
            }
            for other in self.remote_publishers() {
                self.subscribe_all(pid, other).await;
            }
        }
        match role {
            // A viewer publishes nothing: no one else's tracks change, and
            // it is only counted.
            Role::Viewer => self.viewers_changed(now),
            Role::Participant => {
                if let Some(p) = self.participants.get(pid) {
                    let participant = roster::info(p);
                    self.queue_delta(now, Delta::ParticipantJoined { participant });
                }
                for other in self.participants.others(pid) {
                    self.subscribe_all(other, pid).await;
                    self.negotiate(other);
                }
                let tracks = self.tracks_of(pid);
                self.relay_published(pid, &tracks).await;
                self.record_tracks(pid).await;
            }
        }
        self.negotiate(pid);
        Ok(())
    }

    /// Publishes what m-section `m` of a client's offer sends: a Producer
    /// on `transport` of `router` (simulcast by RID, RFC 8853) when it
    /// sends with a codec we forward, piped to the room's other Routers.
    /// Returns the section's answer and the track, if any. `mid_ext_id` is
    /// the session's MID extension id; `screen` marks a screen share;
    /// `keep_gop`, a publisher that cannot be asked for keyframes (RTMP):
    /// the track's mirrors keep their GOP too.
    ///
    /// Errors: the worker refused the producer ([`Fail`] to send).
    pub(super) async fn publish_section(
        &mut self,
        router: RouterId,
        transport: TransportId,
        m: &sdp::MediaSection,
        mid_ext_id: Option<u8>,
        screen: bool,
        keep_gop: bool,
    ) -> Result<(LocalMedia, Option<Track>), Fail> {
        let Some(worker) = self.shard(router).map(|s| s.worker.clone()) else {
            return Err(Fail(ServerMsg::error(
                "server-error",
                "the room's router vanished",
            )));
        };
        let mut track = None;
        // The answer's codec, and its RTX (RFC 4588) for video when offered.
        let codec = m.answer_codec().cloned();
        let rtx = codec
            .as_ref()
            .filter(|_| m.kind == Some(MediaKind::Video))
            .and_then(|c| m.rtx_for(c.pt))
            .cloned();
        let publication = m.publication();
        let publish = publication.is_some();
        if let Some(p) = &publication {
            let (kind, c) = (p.kind, &p.codec);
            // Simulcast (RFC 8853): layers by RID, their SSRCs bound from
            // the first packets carrying the MID and RID extensions; else
            // the announced SSRC ([`sdp::MediaSection::publication`] has
            // one of the two).
            let encodings = match (&p.simulcast, m.ssrc) {
                (Some(rids), _) => rids
                    .iter()
                    .map(|r| EncodingParams {
                        rid: Some(*r),
                        ssrc: None,
                        rtx_ssrc: None,
                    })
                    .collect(),
                (None, ssrc) => ssrc
                    .map(|s| {
                        EncodingParams::single(
                            Ssrc(s),
                            m.rtx_ssrc.filter(|_| p.rtx.is_some()).map(Ssrc),
                        )
                    })
                    .into_iter()
                    .collect(),
            };
            let params = ProducerParams {
                transport,
                kind,
                encodings,
                mid: Mid::new(&m.mid),
                payload_types: vec![Pt(c.pt)],
                video_codec: VideoCodec::from_name(&c.name),
                rtx_payload_types: p.rtx.iter().map(|r| (Pt(r.pt), Pt(c.pt))).collect(),
                // What the publisher may send under the ids it offered:
                // the audio level for audio, the RIDs with simulcast, the
                // AV1 dependency descriptor for AV1 (passed through). Our
                // answer does not take abs-send-time from a publisher.
                extensions: m
                    .extensions
                    .keep_if(Extension::AudioLevel, kind == MediaKind::Audio)
                    .keep_if(Extension::Rid, p.simulcast.is_some())
                    .keep_if(Extension::RepairedRid, p.simulcast.is_some())
                    .with(Extension::DependencyDescriptor, p.dd_ext_id)
                    .without(Extension::AbsSendTime),
                keep_gop,
            };
            let kept = params.clone();
            let producer = call(&worker, |reply| Command::CreateProducer {
                router,
                params,
                reply,
            })
            .await?;
            let mut t = Track {
                producer,
                kind,
                codec: c.clone(),
                screen: screen && kind == MediaKind::Video,
                mid: m.mid.clone(),
                rids: p
                    .simulcast
                    .iter()
                    .flatten()
                    .map(|r| r.to_string())
                    .collect(),
                params: kept,
                mirrors: Vec::new(),
            };
            self.pipe_everywhere(&mut t).await;
            track = Some(t);
        }
        let simulcast = publication.as_ref().and_then(|p| p.simulcast.as_ref());
        let dd_ext_id = publication.as_ref().and_then(|p| p.dd_ext_id);
        let usable = !m.rejected && m.kind.is_some() && codec.is_some();
        let simulcast_recv = simulcast
            .filter(|_| m.extensions.has(Extension::Rid) && publish && usable)
            .map(|rids| SimulcastRecv {
                rids: rids.iter().map(|r| r.to_string()).collect(),
            });
        let receives_simulcast = simulcast_recv.is_some();
        let media = LocalMedia {
            mid: m.mid.clone(),
            kind: if usable { m.kind } else { None },
            media_token: m
                .kind
                .map_or("application".to_string(), |k| k.as_str().to_string()),
            direction: if publish {
                Direction::RecvOnly
            } else {
                Direction::Inactive
            },
            codec,
            extensions: ExtensionMap::EMPTY
                .with(Extension::Mid, mid_ext_id)
                // We answer transport-cc feedback for what the client sends.
                .with(
                    Extension::TransportWideCc,
                    m.extensions
                        .get(Extension::TransportWideCc)
                        .filter(|_| usable),
                )
                // What the publisher may send: its audio level (RFC 6464),
                // which subscribers get and the room's speaker detection
                // reads. Nothing of ours is stamped on a receive-only
                // section.
                .with(
                    Extension::AudioLevel,
                    m.extensions
                        .get(Extension::AudioLevel)
                        .filter(|_| publish && m.kind == Some(MediaKind::Audio)),
                )
                .with(
                    Extension::DependencyDescriptor,
                    dd_ext_id.filter(|_| publish),
                )
                .with(
                    Extension::Rid,
                    m.extensions
                        .get(Extension::Rid)
                        .filter(|_| receives_simulcast),
                )
                .with(
                    Extension::RepairedRid,
                    m.extensions
                        .get(Extension::RepairedRid)
                        .filter(|_| receives_simulcast && rtx.is_some()),
                ),
            send: None,
            rtx,
            rtx_ssrc: None,
            rejected: !usable,
            simulcast_recv,
            sctp_port: None,
        };
        Ok((media, track))
    }
}
