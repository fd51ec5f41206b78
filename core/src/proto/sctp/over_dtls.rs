//! An SCTP association carried in DTLS records (RFC 8261): what a
//! WebRtcTransport and the test client both hold for their data channels.

use std::time::Instant;

use super::{DataEvent, DataSendError, SctpAssociation, SctpConfig};
use crate::proto::dcep::ChannelParams;
use crate::proto::dtls::DtlsEndpoint;

/// A peer's data channels: no association until [`DataChannels::start`]
/// (once DTLS is up, when they were negotiated), then one. Each call that
/// takes the [`DtlsEndpoint`] moves SCTP packets between the two: what DTLS
/// decrypted goes in, and what the association sends comes out as DTLS
/// records for the endpoint's `poll_transmit`.
#[derive(Debug, Default)]
pub struct DataChannels {
    assoc: Option<SctpAssociation>,
}

impl DataChannels {
    /// Starts the association at `now` (see [`SctpAssociation::new`]), and
    /// hands it what DTLS already decrypted.
    pub fn start(
        &mut self,
        now: Instant,
        is_dtls_client: bool,
        remote_max_message: usize,
        config: SctpConfig,
        dtls: &mut DtlsEndpoint,
    ) {
        self.assoc = Some(SctpAssociation::new(
            now,
            is_dtls_client,
            remote_max_message,
            config,
        ));
        self.feed(now, dtls);
    }

    /// Hands the association the SCTP packets DTLS decrypted (dropped when
    /// there is none), then encrypts what it sends.
    pub fn feed(&mut self, now: Instant, dtls: &mut DtlsEndpoint) {
        while let Some(p) = dtls.poll_application_data() {
            if let Some(a) = self.assoc.as_mut() {
                a.handle_packet(now, &p);
            }
        }
        self.flush(dtls);
    }

    /// Encrypts the association's packets into DTLS records.
    pub fn flush(&mut self, dtls: &mut DtlsEndpoint) {
        if let Some(a) = self.assoc.as_mut() {
            while let Some(p) = a.poll_packet() {
                dtls.send_application_data(&p);
            }
        }
    }

    /// True once the association is up.
    pub fn is_connected(&self) -> bool {
        self.assoc
            .as_ref()
            .is_some_and(SctpAssociation::is_connected)
    }

    /// When [`DataChannels::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.assoc.as_ref().and_then(SctpAssociation::poll_timeout)
    }

    /// Runs the association's timers if due.
    pub fn handle_timeout(&mut self, now: Instant, dtls: &mut DtlsEndpoint) {
        if let Some(a) = self.assoc.as_mut()
            && a.poll_timeout().is_some_and(|t| t <= now)
        {
            a.handle_timeout(now);
            self.flush(dtls);
        }
    }

    /// Next event of the association.
    pub fn poll_event(&mut self) -> Option<DataEvent> {
        self.assoc.as_mut()?.poll_event()
    }

    /// [`SctpAssociation::open`].
    ///
    /// Errors: [`DataSendError`].
    pub fn open(
        &mut self,
        now: Instant,
        params: ChannelParams,
        dtls: &mut DtlsEndpoint,
    ) -> Result<u16, DataSendError> {
        let r = self
            .assoc
            .as_mut()
            .ok_or(DataSendError::NoChannel)?
            .open(now, params);
        self.flush(dtls);
        r
    }

    /// [`SctpAssociation::send`].
    ///
    /// Errors: [`DataSendError`].
    pub fn send(
        &mut self,
        now: Instant,
        stream: u16,
        ppid: u32,
        data: Vec<u8>,
        dtls: &mut DtlsEndpoint,
    ) -> Result<(), DataSendError> {
        let r = self
            .assoc
            .as_mut()
            .ok_or(DataSendError::NoChannel)?
            .send(now, stream, ppid, data);
        self.flush(dtls);
        r
    }

    /// [`SctpAssociation::send_many`]; with no association, every message
    /// fails with [`DataSendError::NoChannel`].
    pub fn send_many(
        &mut self,
        now: Instant,
        msgs: Vec<(u16, u32, Vec<u8>)>,
        dtls: &mut DtlsEndpoint,
    ) -> Vec<Result<(), DataSendError>> {
        let r = match self.assoc.as_mut() {
            Some(a) => a.send_many(now, msgs),
            None => vec![Err(DataSendError::NoChannel); msgs.len()],
        };
        self.flush(dtls);
        r
    }

    /// [`SctpAssociation::close`].
    pub fn close(&mut self, now: Instant, stream: u16, dtls: &mut DtlsEndpoint) {
        if let Some(a) = self.assoc.as_mut() {
            a.close(now, stream);
        }
        self.flush(dtls);
    }

    /// Aborts and drops the association.
    pub fn abort(&mut self) {
        if let Some(mut a) = self.assoc.take() {
            a.abort();
        }
    }
}
