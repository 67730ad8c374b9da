//! RPC calls over request/response (PROTOCOL.md §15.5.2): a function `name` is the
//! subject `$RPC.<name>`, its arguments a [`Value`] list in the Request body, its result
//! one [`Value`] in the Response body, its errors Refusals.

use core::fmt;

use super::value::{List, Value, ValueError, ValueWriter};
use crate::buffers::Priority;
use crate::error::Error;
use crate::identity::{PeerId, PEER_ID_TEXT_LEN};
use crate::messaging::request::{self, RefuseCode, VERSION_MAX};
use crate::messaging::subject::{self, SubjectError, MAX_SUBJECT_LEN};
use crate::messaging::{MessagingError, Messenger, Outcome, RequestOptions};
use crate::node::{BufferPool, ConnId, Slot};
use crate::time::Instant;
use crate::wire::kind;

/// The subject prefix of every call.
pub const PREFIX: &str = "$RPC.";
/// The longest function name: a subject without the prefix.
pub const MAX_NAME: usize = MAX_SUBJECT_LEN - PREFIX.len();
/// Built-in: the registered functions, `[{"name": str, "version": str}, ...]`.
pub const GET_FUNCS: &str = "get_funcs";
/// Built-in: the connected peers' ids in text form, `[str, ...]`.
pub const GET_PEERS: &str = "get_peers";
/// Refusal code: no function of that name (the peer does RPC).
pub const UNKNOWN_FUNCTION: u16 = 6;
/// Refusal code: the arguments are not a valid value list (message: why).
pub const BAD_ARGUMENTS: u16 = 7;
/// Bytes a Response packet adds before its body: the id and the body length varints.
const RESPONSE_HEAD_MAX: usize = 10 + 5;

/// A registered function, as [`Messenger::register_fn`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FnId(pub u16);

/// One registered function (about 300 bytes). Opaque: the caller provides room.
#[derive(Debug, Clone)]
pub struct FnSlot {
    pub(crate) used: bool,
    pub(crate) major: Option<u32>,
    pub(crate) version: heapless::String<VERSION_MAX>,
    pub(crate) name: heapless::String<MAX_NAME>,
}

impl FnSlot {
    /// A free slot, for static arrays: `[FnSlot::EMPTY; N]`.
    pub const EMPTY: FnSlot =
        FnSlot { used: false, major: None, version: heapless::String::new(), name: heapless::String::new() };
}

/// A call of one of our functions: answer with [`Messenger::reply`] or
/// [`Messenger::reply_error`] (peer, id).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct IncomingCall<'a> {
    pub conn: ConnId,
    pub peer: PeerId,
    pub id: u64,
    pub func: FnId,
    pub name: &'a str,
    pub version: &'a str,
    pub timeout_ms: u32,
    /// Checked against the value limits already.
    pub args: List<'a>,
}

/// What an RPC command can fail with.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum RpcError {
    Messaging(MessagingError),
    /// The arguments (or a result) are not a valid value list (value).
    Value(ValueError),
    /// Arguments must be a list.
    NotAList,
    /// `get_funcs`, `get_peers`: answered by the layer.
    ReservedName,
}

impl From<MessagingError> for RpcError {
    fn from(e: MessagingError) -> Self {
        RpcError::Messaging(e)
    }
}
impl From<SubjectError> for RpcError {
    fn from(e: SubjectError) -> Self {
        RpcError::Messaging(MessagingError::Subject(e))
    }
}
impl From<ValueError> for RpcError {
    fn from(e: ValueError) -> Self {
        RpcError::Value(e)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Messaging(e) => write!(f, "{e}"),
            RpcError::Value(e) => write!(f, "{e}"),
            RpcError::NotAList => f.write_str("arguments must be a list"),
            RpcError::ReservedName => f.write_str("the name of a built-in function"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RpcError {}

/// How a call ended, read from its [`Outcome`] by [`call_result`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum CallError<'a> {
    UnknownFunction,
    BadArguments,
    VersionMismatch,
    /// The peer does not do RPC at all (NoResponders for `$RPC.`).
    NoRpc,
    /// The function's error ([`Messenger::reply_error`]).
    Failed {
        code: u16,
        message: &'a str,
    },
    /// Another refusal (busy, expired, malformed).
    Refused(RefuseCode),
    /// The result is not a valid value.
    BadResult(ValueError),
    Timeout,
    Cancelled,
    Disconnected,
}

/// The result value of a call's outcome, or its typed error.
pub fn call_result<'a>(outcome: &Outcome<'a>) -> Result<Value<'a>, CallError<'a>> {
    match *outcome {
        Outcome::Response(b) => Value::decode(b).map_err(CallError::BadResult),
        Outcome::NoResponders => Err(CallError::NoRpc),
        Outcome::Refused(RefuseCode::VersionMismatch) => Err(CallError::VersionMismatch),
        Outcome::Refused(c) => Err(match c.to_u16() {
            UNKNOWN_FUNCTION => CallError::UnknownFunction,
            BAD_ARGUMENTS => CallError::BadArguments,
            _ => CallError::Refused(c),
        }),
        Outcome::Failed { code, message } => Err(CallError::Failed { code, message }),
        Outcome::Timeout => Err(CallError::Timeout),
        Outcome::Cancelled => Err(CallError::Cancelled),
        _ => Err(CallError::Disconnected),
    }
}

/// A built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Funcs,
    Peers,
}

/// What the messenger does with an incoming `$RPC.` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RpcStep {
    Deliver,
    Builtin(Builtin),
    Refuse(u16, &'static str),
}

fn check_name(name: &str) -> Result<(), RpcError> {
    if name.len() > MAX_NAME {
        return Err(SubjectError::TooLong { len: name.len(), max: MAX_NAME }.into());
    }
    if name.starts_with('$') {
        return Err(SubjectError::InvalidByte { byte: b'$', at: 0 }.into());
    }
    Ok(())
}

fn args_list(body: &[u8]) -> Result<List<'_>, RpcError> {
    Value::decode(body)?.as_list().ok_or(RpcError::NotAList)
}

fn value_text(e: RpcError) -> &'static str {
    match e {
        RpcError::Value(ValueError::TooDeep { .. }) => "arguments nested too deep",
        RpcError::Value(ValueError::TooMany { .. }) => "too many argument values",
        RpcError::Value(ValueError::TooLarge { .. }) => "arguments too large",
        RpcError::NotAList => "arguments are not a list",
        _ => "arguments do not decode",
    }
}

pub(crate) fn find(functions: &[FnSlot], name: &str) -> Option<usize> {
    functions.iter().position(|f| f.used && f.name == name)
}

/// Decides an incoming request for `$RPC.<name>` (a look only).
pub(crate) fn decide(functions: &[FnSlot], name: &str, version: &str, body: &[u8]) -> RpcStep {
    let builtin = match name {
        GET_FUNCS => Some(Builtin::Funcs),
        GET_PEERS => Some(Builtin::Peers),
        _ => None,
    };
    let Some(i) = builtin.is_none().then(|| find(functions, name)) else {
        return match args_list(body) {
            Ok(_) => RpcStep::Builtin(builtin.unwrap_or(Builtin::Funcs)),
            Err(e) => RpcStep::Refuse(BAD_ARGUMENTS, value_text(e)),
        };
    };
    let Some(i) = i else { return RpcStep::Refuse(UNKNOWN_FUNCTION, "") };
    let theirs = request::parse_version(version).ok().flatten();
    if let (Some(ours), Some(t)) = (functions[i].major, theirs) {
        if ours != t {
            return RpcStep::Refuse(RefuseCode::VersionMismatch.to_u16(), "");
        }
    }
    match args_list(body) {
        Ok(_) => RpcStep::Deliver,
        Err(e) => RpcStep::Refuse(BAD_ARGUMENTS, value_text(e)),
    }
}

/// The call event of a request `decide` delivered.
pub(crate) fn incoming<'a>(
    functions: &[FnSlot],
    conn: ConnId,
    peer: PeerId,
    r: &request::RequestPacket<'a>,
) -> Option<IncomingCall<'a>> {
    let name = r.subject.strip_prefix(PREFIX)?;
    let i = find(functions, name)?;
    let args = args_list(r.body).ok()?;
    Some(IncomingCall {
        conn,
        peer,
        id: r.id,
        func: FnId(i as u16),
        name,
        version: r.version,
        timeout_ms: r.timeout_ms,
        args,
    })
}

impl<'a, P, S> Messenger<'a, P, S>
where
    P: BufferPool,
    S: AsRef<[Slot<P::Buf>]> + AsMut<[Slot<P::Buf>]>,
{
    /// Registers function `name` (a literal subject of at most [`MAX_NAME`] bytes and 15
    /// tokens, not starting with `$`, not a built-in) at `version` ("" for any). Calls
    /// need a function table ([`crate::messaging::MessengerStorage::functions`]); without
    /// one, RPC is off and `$RPC.` requests go to the request handlers.
    pub fn register_fn(&mut self, name: &str, version: &str) -> Result<FnId, RpcError> {
        check_name(name)?;
        if name == GET_FUNCS || name == GET_PEERS {
            return Err(RpcError::ReservedName);
        }
        let mut subj = heapless::String::<MAX_SUBJECT_LEN>::new();
        let _ = subj.push_str(PREFIX);
        let _ = subj.push_str(name);
        subject::validate_subject(&subj)?;
        let major = request::parse_version(version)?;
        let limit = self.functions.len();
        if let Some(i) = find(&self.functions, name) {
            return Ok(FnId(i as u16));
        }
        let i = self.functions.iter().position(|f| !f.used);
        let i = i.ok_or(MessagingError::HandlerLimit { limit })?;
        let mut slot = FnSlot { used: true, major, ..FnSlot::EMPTY };
        let _ = slot.name.push_str(name);
        let _ = slot.version.push_str(version);
        self.functions[i] = slot;
        Ok(FnId(i as u16))
    }

    pub fn unregister_fn(&mut self, f: FnId) -> Result<(), RpcError> {
        let slot = self.functions.get_mut(f.0 as usize).filter(|s| s.used);
        *slot.ok_or(MessagingError::UnknownHandler)? = FnSlot::EMPTY;
        Ok(())
    }

    /// Calls `name` on `peer` with `args`, an encoded [`Value`] list (checked here, so a
    /// peer never sees invalid arguments from us). Returns the request id; its
    /// [`crate::messaging::MessengerEvent::Outcome`] ends it: read it with [`call_result`].
    pub fn call(
        &mut self,
        now: Instant,
        peer: &PeerId,
        name: &str,
        args: &[u8],
        opts: RequestOptions<'_>,
    ) -> Result<u64, RpcError> {
        check_name(name)?;
        args_list(args)?;
        let mut subj = heapless::String::<MAX_SUBJECT_LEN>::new();
        let _ = subj.push_str(PREFIX);
        let _ = subj.push_str(name);
        Ok(self.request(now, peer, &subj, args, opts)?)
    }

    /// Answers call `id` from `peer` with `result`, one encoded [`Value`] (checked here).
    pub fn reply(&mut self, now: Instant, peer: &PeerId, id: u64, result: &[u8]) -> Result<(), RpcError> {
        Value::decode(result)?;
        Ok(self.respond(now, peer, id, result)?)
    }

    /// Answers call `id` with the function's error: `code` from
    /// [`request::APP_CODE_MIN`], `message` at most [`request::MESSAGE_MAX`] bytes.
    pub fn reply_error(
        &mut self,
        now: Instant,
        peer: &PeerId,
        id: u64,
        code: u16,
        message: &str,
    ) -> Result<(), RpcError> {
        Ok(self.respond_error(now, peer, id, code, message)?)
    }

    /// Registered functions (their slots' order).
    pub fn functions(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.functions.iter().filter(|f| f.used).map(|f| (f.name.as_str(), f.version.as_str()))
    }

    /// Answers a built-in: the result is written straight into the scratch buffer after
    /// room for the Response head, which is then put in front (one buffer, no copy out).
    pub(crate) fn answer_builtin(&mut self, now: Instant, peer: &PeerId, id: u64, which: Builtin) {
        let res = {
            let Messenger { node, functions, scratch, .. } = self;
            let Some(room) = scratch.get_mut(RESPONSE_HEAD_MAX..) else { return };
            let mut w = ValueWriter::new(room);
            let r = match which {
                Builtin::Funcs => write_funcs(&mut w, functions),
                Builtin::Peers => {
                    let n = node.peers().count();
                    w.list(n).map(|_| ()).and_then(|()| {
                        node.peers().try_for_each(|p| {
                            let t: [u8; PEER_ID_TEXT_LEN] = p.peer.to_text();
                            w.str(core::str::from_utf8(&t).unwrap_or("")).map(|_| ())
                        })
                    })
                }
            };
            r.map(|()| w.len())
        };
        let Ok(n) = res else {
            let _ = self.respond_error_layer(now, peer, id, RefuseCode::Busy.to_u16(), "result too large");
            return;
        };
        let mut head = [0u8; RESPONSE_HEAD_MAX];
        let mut hw = ValueWriter::new(&mut head);
        let _ = hw.raw_varint(id).and_then(|w| w.raw_varint(n as u64));
        let h = hw.len();
        let start = RESPONSE_HEAD_MAX - h;
        self.scratch[start..RESPONSE_HEAD_MAX].copy_from_slice(&head[..h]);
        let end = RESPONSE_HEAD_MAX + n;
        let sent = self.node.send_message_kind(now, peer, kind::RESPONSE, Priority::Normal, &self.scratch[start..end]);
        if sent.is_ok() {
            self.wake = true;
        }
    }

    fn respond_error_layer(
        &mut self,
        now: Instant,
        peer: &PeerId,
        id: u64,
        code: u16,
        message: &str,
    ) -> Result<(), Error> {
        self.refuse_raw(now, peer, id, code, message)
    }
}

fn write_funcs(w: &mut ValueWriter<'_>, functions: &[FnSlot]) -> Result<(), ValueError> {
    w.list(functions.iter().filter(|f| f.used).count())?;
    for f in functions.iter().filter(|f| f.used) {
        w.map(2)?.key("name")?.str(&f.name)?.key("version")?.str(&f.version)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::request::{Packet, RequestPacket, ResponsePacket};

    fn hex(b: &[u8]) -> heapless::String<256> {
        let mut s = heapless::String::new();
        for x in b {
            let _ = core::fmt::write(&mut s, format_args!("{x:02x}"));
        }
        s
    }

    /// The byte examples of PROTOCOL.md §15.5.2.
    #[test]
    fn spec_example_bytes() {
        let mut buf = [0u8; 128];
        let req = Packet::Request(RequestPacket {
            id: 0x1_0003,
            parent: None,
            timeout_ms: 10_000,
            version: "",
            subject: "$RPC.get_funcs",
            body: &[0x06, 0x00],
        });
        let n = req.encode(&mut buf).unwrap();
        assert_eq!(hex(&buf[..n]), "8380040090 4e000e245250432e6765745f66756e6373020600".replace(' ', "").as_str());
        let mut table = [FnSlot::EMPTY, FnSlot::EMPTY];
        table[1] = FnSlot { used: true, major: Some(1), ..FnSlot::EMPTY };
        let _ = table[1].name.push_str("echo");
        let _ = table[1].version.push_str("1");
        let mut body = [0u8; 64];
        let mut w = ValueWriter::new(&mut body);
        write_funcs(&mut w, &table).unwrap();
        let b = w.len();
        let n = Packet::Response(ResponsePacket { id: 0x1_0003, body: &body[..b] }).encode(&mut buf).unwrap();
        assert_eq!(hex(&buf[..n]), "8380041a06010702046e616d6504046563686f0776657273696f6e040131");
    }

    #[test]
    fn decide_refuses_before_delivering() {
        let mut table = [FnSlot::EMPTY];
        table[0] = FnSlot { used: true, major: Some(1), ..FnSlot::EMPTY };
        let _ = table[0].name.push_str("f");
        let empty = [0x06, 0x00];
        assert_eq!(decide(&table, "f", "1.4", &empty), RpcStep::Deliver);
        assert_eq!(decide(&table, "g", "", &empty), RpcStep::Refuse(UNKNOWN_FUNCTION, ""));
        assert_eq!(decide(&table, "f", "2", &empty), RpcStep::Refuse(2, ""));
        assert_eq!(decide(&table, "f", "", &[0x00]), RpcStep::Refuse(BAD_ARGUMENTS, "arguments are not a list"));
        assert_eq!(decide(&table, "get_peers", "", &empty), RpcStep::Builtin(Builtin::Peers));
        assert_eq!(decide(&table, "get_funcs", "", &[0x06]), RpcStep::Refuse(BAD_ARGUMENTS, "arguments do not decode"));
    }
}
