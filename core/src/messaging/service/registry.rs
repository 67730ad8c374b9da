//! The services this node provides: a caller-sized table of (name, description,
//! version), each backed by a request handler and a subscription on `$SVC.<name>`.

use super::{ServiceId, DESCRIPTION_MAX, MAX_NAME, PREFIX};
use crate::buffers::Priority;
use crate::messaging::pubsub::SubId;
use crate::messaging::request::{self, VERSION_MAX};
use crate::messaging::subject::{self, MAX_SUBJECT_LEN};
use crate::messaging::{HandlerId, MessagingError, Messenger};
use crate::node::{BufferPool, Slot};
use crate::time::Instant;

/// One provided service (about 450 bytes). Opaque: the caller provides room.
#[derive(Debug, Clone)]
pub struct ServiceSlot {
    used: bool,
    subject: heapless::String<MAX_SUBJECT_LEN>,
    description: heapless::String<DESCRIPTION_MAX>,
    version: heapless::String<VERSION_MAX>,
    handler: HandlerId,
    sub: SubId,
}

impl ServiceSlot {
    /// A free slot, for static arrays: `[ServiceSlot::EMPTY; N]`.
    pub const EMPTY: ServiceSlot = ServiceSlot {
        used: false,
        subject: heapless::String::new(),
        description: heapless::String::new(),
        version: heapless::String::new(),
        handler: HandlerId(0),
        sub: SubId(0),
    };
}

/// `$SVC.<name>` for a valid service name: a literal subject (§15.1) that does not
/// start with `$`, at most [`MAX_NAME`] bytes.
pub(crate) fn subject_of(name: &str) -> Result<heapless::String<MAX_SUBJECT_LEN>, MessagingError> {
    if name.len() > MAX_NAME {
        return Err(subject::SubjectError::TooLong { len: name.len() + PREFIX.len(), max: MAX_SUBJECT_LEN }.into());
    }
    if name.starts_with('$') {
        return Err(MessagingError::InvalidServiceName);
    }
    let mut s = heapless::String::new();
    // Cannot fail: the length is checked above.
    let _ = s.push_str(PREFIX);
    let _ = s.push_str(name);
    subject::validate_subject(&s)?;
    Ok(s)
}

impl<P, S> Messenger<'_, P, S>
where
    P: BufferPool,
    S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
{
    /// Provides service `name` (§15.4): a request handler and a subscription (its
    /// advertisement, in the high class) for `$SVC.<name>`. Requests for it then come as
    /// [`crate::messaging::MessengerEvent::Request`] with that subject
    /// ([`super::name_of`] gives the name back); answer them with `respond`.
    ///
    /// Fails at once, with nothing kept, on a bad name, a description over
    /// [`DESCRIPTION_MAX`] bytes, a bad version, a full service table
    /// ([`MessagingError::ServiceLimit`]), a name already provided
    /// ([`MessagingError::ServiceExists`]), or a full handler or subscription table.
    pub fn register_service(
        &mut self,
        now: Instant,
        name: &str,
        description: &str,
        version: &str,
    ) -> Result<ServiceId, MessagingError> {
        let subject = subject_of(name)?;
        if description.len() > DESCRIPTION_MAX {
            return Err(MessagingError::MessageTooLong { max: DESCRIPTION_MAX });
        }
        request::parse_version(version)?;
        let limit = self.config.max_services.min(self.services.len());
        if self.services[..limit].iter().any(|s| s.used && s.subject == subject) {
            return Err(MessagingError::ServiceExists);
        }
        let i = self.services[..limit].iter().position(|s| !s.used).ok_or(MessagingError::ServiceLimit { limit })?;
        let handler = self.register(&subject, version)?;
        let sub = match self.subscribe(now, &subject, Priority::High) {
            Ok(s) => s,
            Err(e) => {
                let _ = self.unregister(handler);
                return Err(e);
            }
        };
        let mut slot = ServiceSlot { used: true, subject, handler, sub, ..ServiceSlot::EMPTY };
        // Cannot fail: both lengths were checked.
        let _ = slot.description.push_str(description);
        let _ = slot.version.push_str(version);
        self.services[i] = slot;
        Ok(ServiceId(i as u16))
    }

    /// Stops providing a service: its handler goes (requests get NoResponders, so
    /// requesters fail over at once) and its interest is withdrawn.
    pub fn unregister_service(&mut self, now: Instant, id: ServiceId) -> Result<(), MessagingError> {
        let s = self.services.get(id.0 as usize).filter(|s| s.used).ok_or(MessagingError::UnknownService)?;
        let (handler, sub) = (s.handler, s.sub);
        self.services[id.0 as usize] = ServiceSlot::EMPTY;
        let _ = self.unregister(handler);
        self.unsubscribe(now, sub)
    }

    /// The services this node provides: (name, description, version), in table order.
    pub fn services(&self) -> impl Iterator<Item = (&str, &str, &str)> + '_ {
        self.services
            .iter()
            .filter(|s| s.used)
            .map(|s| (s.subject.strip_prefix(PREFIX).unwrap_or(""), s.description.as_str(), s.version.as_str()))
    }
}
