//! Service calls on the [`Messenger`]: provider discovery from interest, the attempt
//! loop with failover, and the hooks the messenger's `poll_event` calls.

use super::calls::{Calls, State};
use super::registry::subject_of;
use super::strategy::{self, Candidate, Kind};
use super::{AttemptError, CallId, ServiceOptions, ServiceOutcome, ServiceStats, Strategy, MAX_ATTEMPTS};
use crate::identity::PeerId;
use crate::messaging::request::{self, RefuseCode, APP_CODE_MIN, VERSION_MAX};
use crate::messaging::subject::MAX_SUBJECT_LEN;
use crate::messaging::{MessagingError, Messenger, MessengerEvent, RequestOptions};
use crate::node::{BufferPool, Slot};
use crate::time::Instant;

/// What ends a call before any answer.
enum End {
    NoResponders,
    Timeout,
    RetryCap,
}

impl End {
    fn outcome(self) -> ServiceOutcome<'static> {
        match self {
            End::NoResponders => ServiceOutcome::NoResponders,
            End::Timeout => ServiceOutcome::Timeout,
            End::RetryCap => ServiceOutcome::RetryCap,
        }
    }
}

/// A reply to one of this node's requests, as the messenger's `poll_event` decoded it.
pub(crate) enum Reply<'e> {
    Response(&'e [u8]),
    Refusal { code: u16, message: &'e str },
}

/// The reply `req` got from `provider`, if `req` is a service call's attempt: its final
/// event (an answer) or the attempt's failure (the next attempt is owed). `None`: an
/// ordinary request. Borrows only the call table, so the reply may borrow the node.
pub(crate) fn on_reply<'e>(
    calls: &mut Calls<'_>,
    req: u64,
    provider: PeerId,
    reply: Reply<'e>,
) -> Option<MessengerEvent<'e>> {
    let i = calls.take_req(req)?;
    let (call, attempts) = (calls.id(i), calls.t[i].attempts);
    let outcome = match reply {
        Reply::Response(body) => ServiceOutcome::Response { provider, body },
        Reply::Refusal { code, message } if code >= APP_CODE_MIN => ServiceOutcome::Failed { provider, code, message },
        Reply::Refusal { code, .. } => {
            let error = match RefuseCode::from_u16(code) {
                RefuseCode::NoResponders => AttemptError::NoResponders,
                c => AttemptError::Refused(c),
            };
            return Some(fail_attempt(calls, i, provider, error));
        }
    };
    calls.stats.answered += 1;
    calls.free_slot(i);
    Some(MessengerEvent::Service { call, attempts, last: None, outcome })
}

/// Call `i`'s attempt to `provider` failed: the next attempt is owed.
fn fail_attempt(calls: &mut Calls<'_>, i: usize, provider: PeerId, error: AttemptError) -> MessengerEvent<'static> {
    let c = &mut calls.t[i];
    c.last = Some(error);
    let attempt = c.attempts;
    calls.owe(i);
    MessengerEvent::ServiceAttempt { call: calls.id(i), provider, attempt, error }
}

impl<P, S> Messenger<'_, P, S>
where
    P: BufferPool,
    S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
{
    /// Sends a request for service `name` (§15.4) to one provider picked by `strategy`
    /// among the direct neighbours whose interest advertises `$SVC.<name>`; when an
    /// attempt fails (NoResponders, a refusal, its timeout, a disconnect) the next goes
    /// to a provider not tried yet, until `opts.deadline` or `opts.retries` more attempts.
    /// Each attempt's timeout is what is left of the deadline divided by the attempts
    /// still possible. The call ends in exactly one [`MessengerEvent::Service`]; each
    /// failed attempt is reported as [`MessengerEvent::ServiceAttempt`].
    ///
    /// Fails at once, with nothing kept: [`MessagingError::NoProviders`] (no provider
    /// known, or none could be sent to: the last send error is in the stats-free
    /// [`MessagingError::NoProviders`] too), [`MessagingError::ServiceCallLimit`],
    /// [`MessagingError::ServiceBodyTooLong`], [`MessagingError::RetryLimit`], a bad name
    /// or version.
    pub fn request_service(
        &mut self,
        now: Instant,
        name: &str,
        body: &[u8],
        strategy: Strategy<'_>,
        opts: ServiceOptions<'_>,
    ) -> Result<CallId, MessagingError> {
        let subject = subject_of(name)?;
        request::parse_version(opts.version)?;
        let retries = opts.retries.unwrap_or(self.config.service_retries);
        if usize::from(retries) >= MAX_ATTEMPTS {
            return Err(MessagingError::RetryLimit { max: (MAX_ATTEMPTS - 1) as u8 });
        }
        let picker = strategy::Picker::new(strategy).ok_or(MessagingError::NoProviders)?;
        let limit = self.config.max_service_calls.min(self.svc.t.len());
        if self.svc.in_use >= limit {
            return Err(MessagingError::ServiceCallLimit { limit });
        }
        let max = self.svc.body_cap().min(self.config.service_body_max);
        if body.len() > max {
            return Err(MessagingError::ServiceBodyTooLong { max });
        }
        let i = self.svc.alloc(body).ok_or(MessagingError::ServiceCallLimit { limit })?;
        let deadline =
            opts.deadline.unwrap_or(self.config.default_timeout).min(crate::messaging::MessagingConfig::MAX_TIMEOUT);
        let c = &mut self.svc.t[i];
        c.subject = subject;
        // Cannot fail: parse_version bounds it to VERSION_MAX.
        let _ = c.version.push_str(opts.version);
        c.picker = picker;
        c.deadline = now.saturating_add(deadline);
        c.max_attempts = retries + 1;
        c.priority = opts.priority.unwrap_or(self.config.default_priority);
        c.parent = opts.parent;
        self.svc.stats.calls += 1;
        match self.svc_attempt(now, i) {
            Ok(()) => Ok(self.svc.id(i)),
            Err((_, err)) => {
                self.svc.free_slot(i);
                Err(err.unwrap_or(MessagingError::NoProviders))
            }
        }
    }

    /// Ends a service call: its outcome is [`ServiceOutcome::Cancelled`] (on a later poll);
    /// the provider of the attempt in flight is told, as for `cancel`.
    pub fn cancel_service(&mut self, now: Instant, call: CallId) -> Result<(), MessagingError> {
        let i = self.svc.slot_of(call).ok_or(MessagingError::UnknownCall)?;
        self.svc.t[i].cancelled = true;
        if self.svc.t[i].state == State::InFlight {
            let req = self.svc.t[i].req;
            // Its Cancelled outcome comes back through `svc_on_end`, which ends the call.
            let _ = self.cancel(now, req);
        }
        Ok(())
    }

    /// Service calls in progress (table slots in use).
    pub fn service_calls(&self) -> usize {
        self.svc.in_use
    }

    pub fn service_stats(&self) -> ServiceStats {
        self.svc.stats
    }

    /// The direct neighbours advertising `subject` that call `i` has not tried, sorted
    /// by PeerId, at most `max_providers`. Cost: the interest lookup (bucket + wildcard
    /// list) and O(1) per provider.
    fn svc_candidates(&self, i: usize) -> heapless::Vec<Candidate, { super::MAX_PROVIDERS }> {
        let c = &self.svc.t[i];
        let limit = self.config.max_providers;
        let mut out = heapless::Vec::<Candidate, { super::MAX_PROVIDERS }>::new();
        let kind = &c.picker.kind;
        self.pubsub.for_providers(&c.subject, |peer| {
            if out.len() >= limit || c.was_tried(peer) || out.iter().any(|x| x.peer == *peer) {
                return;
            }
            if self.node.peer_conn(peer).is_none() {
                return;
            }
            let rtt_us = match kind {
                Kind::LowestLatency => self.node.quality(peer).and_then(|q| q.rtt_us),
                _ => None,
            };
            let capable = *kind == Kind::Capability
                && self
                    .node
                    .hello(peer)
                    .is_some_and(|h| h.capabilities.iter().any(|x| x.as_str() == c.picker.capability.as_str()));
            let pending = self.pending_to(peer);
            let _ = out.push(Candidate { peer: *peer, rtt_us, pending, capable });
        });
        out.sort_unstable_by_key(|c| c.peer.0);
        out
    }

    /// Sends call `i`'s next attempt, picking past providers the node cannot queue to.
    /// `Err`: the call ends (with the last send error when nothing could be sent).
    fn svc_attempt(&mut self, now: Instant, i: usize) -> Result<(), (End, Option<MessagingError>)> {
        let mut last_err = None;
        loop {
            let c = &self.svc.t[i];
            if c.attempts >= c.max_attempts {
                return Err((End::RetryCap, last_err));
            }
            let remaining = c.deadline.saturating_since(now);
            // Requests carry whole milliseconds: below one, none fits the deadline.
            if remaining < core::time::Duration::from_millis(1) {
                return Err((End::Timeout, last_err));
            }
            let cands = self.svc_candidates(i);
            let cursor = self.svc.cursor(&self.svc.t[i].subject);
            let c = &mut self.svc.t[i];
            let Some(k) = strategy::pick(&mut c.picker, &cands, cursor.as_ref()) else {
                return Err((End::NoResponders, last_err));
            };
            let peer = cands[k].peer;
            let left = usize::from(c.max_attempts - c.attempts).min(cands.len()).max(1) as u32;
            let timeout = (remaining / left).max(core::time::Duration::from_millis(1));
            c.tried[c.attempts as usize] = peer;
            c.attempts += 1;
            let subject: heapless::String<MAX_SUBJECT_LEN> = c.subject.clone();
            let version: heapless::String<VERSION_MAX> = c.version.clone();
            let mut opts = RequestOptions::new().timeout(timeout).version(&version).priority(c.priority);
            opts.parent = c.parent;
            self.svc.set_cursor(&subject, peer);
            self.svc.stats.attempts += 1;
            let range = self.svc.body_range(i);
            let bodies = self.svc.take_bodies();
            let sent = self.request(now, &peer, &subject, &bodies[range], opts);
            self.svc.put_bodies(bodies);
            match sent {
                Ok(req) => {
                    self.svc.index(i, req);
                    return Ok(());
                }
                Err(e) => {
                    self.svc.t[i].last = Some(AttemptError::NotSent);
                    last_err = Some(e);
                }
            }
        }
    }

    /// An owed outcome (timeout, cancel, disconnect) of request `req`: the call's event
    /// if it is a service attempt, else `None`.
    pub(crate) fn svc_on_end(
        &mut self,
        req: u64,
        provider: PeerId,
        error: AttemptError,
    ) -> Option<MessengerEvent<'static>> {
        let i = self.svc.take_req(req)?;
        if self.svc.t[i].cancelled {
            let (call, attempts) = (self.svc.id(i), self.svc.t[i].attempts);
            self.svc.free_slot(i);
            return Some(MessengerEvent::Service {
                call,
                attempts,
                last: Some(error),
                outcome: ServiceOutcome::Cancelled,
            });
        }
        Some(fail_attempt(&mut self.svc, i, provider, error))
    }

    /// Owed work: sends the next attempt of each call that failed one, and reports the
    /// calls that ended. First in `poll_event`, so no borrowed event is held.
    pub(crate) fn svc_poll(&mut self) -> Option<MessengerEvent<'static>> {
        let now = self.node.last_now();
        while let Some(i) = self.svc.pop_owed() {
            let end = if self.svc.t[i].cancelled {
                None
            } else {
                match self.svc_attempt(now, i) {
                    Ok(()) => {
                        self.svc.stats.failovers += 1;
                        continue;
                    }
                    Err((end, _)) => Some(end),
                }
            };
            let (call, attempts, last) = (self.svc.id(i), self.svc.t[i].attempts, self.svc.t[i].last);
            self.svc.free_slot(i);
            let outcome = match end {
                None => ServiceOutcome::Cancelled,
                Some(e) => {
                    self.svc.stats.unanswered += 1;
                    e.outcome()
                }
            };
            return Some(MessengerEvent::Service { call, attempts, last, outcome });
        }
        None
    }

    /// Whether owed service work waits for `poll_event`.
    pub(crate) fn svc_owed(&self) -> bool {
        self.svc.has_owed()
    }
}
