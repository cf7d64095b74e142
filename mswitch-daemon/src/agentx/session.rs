//! One AgentX session of a read-only subagent with its master agent (RFC 2741 §7), as a state
//! machine with no I/O.
//!
//! The session opens (§7.1.1), registers each of its [`Registration`]s in turn (§7.1.4), and
//! then answers the master's Get, GetNext and GetBulk (§7.2.3) from a [`MibView`]. Sets are
//! refused with `notWritable` (every object served is read-only).
//!
//! A driver calls, in this order:
//! 1. [`Session::new`] once connected; then writes what [`Session::poll_transmit`] gives.
//! 2. For every read: [`Session::handle_input`]; if [`Session::has_requests`], builds a view
//!    and calls [`Session::answer`]; writes [`Session::poll_transmit`]; logs
//!    [`Session::poll_event`]s; stops when [`Session::is_closed`].
//! 3. At [`Session::poll_timeout`]: [`Session::handle_timeout`] (then as in 2).
//! 4. To leave: [`Session::close`], then writes [`Session::poll_transmit`].
//!
//! Malformed input never panics: a request that is framed but does not parse gets a Response
//! with `parseError` (§7.2.2), a PDU type a subagent does not take gets `parseError` too, and
//! a stream that cannot be framed (or a malformed answer to our own Open or Register) ends the
//! session with a Close (`reasonParseError`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::mib::MibView;
use super::pdu::{
    CloseReason, Message, Oid, Open, Packet, ParseError, Pdu, Register, Response, SearchRange,
    Value, VarBind, frame_len, res_error,
};

/// How long the master has to answer our Open and each Register.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most varbinds in one GetBulk answer (the master bounds it too, by its message size).
pub const MAX_BULK_VARBINDS: usize = 1024;

/// Octets of input kept while waiting for the rest of a PDU: one whole PDU at most.
const MAX_BUFFERED: usize = super::pdu::HEADER_LEN + super::pdu::MAX_PAYLOAD_LEN;

/// A subtree (or range of subtrees) to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// `r.subtree`.
    pub subtree: Oid,
    /// `r.range_subid` and `r.upper_bound` (see [`Register::range`]).
    pub range: Option<(u8, u32)>,
    /// `r.priority` (127: the default).
    pub priority: u8,
}

impl std::fmt::Display for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.range {
            // The net-snmp notation: the ranging sub-identifier as [from-to].
            Some((at, upper)) => {
                for (i, s) in self.subtree.subids().iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if i + 1 == usize::from(at) {
                        write!(f, "[{s}-{upper}]")?;
                    } else {
                        write!(f, "{s}")?;
                    }
                }
                Ok(())
            }
            None => write!(f, "{}", self.subtree),
        }
    }
}

/// What the session says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// `o.id`.
    pub id: Oid,
    /// `o.descr`.
    pub description: String,
    /// `o.timeout` in seconds (0: the master's default).
    pub timeout: u8,
    /// What to register, in order.
    pub registrations: Vec<Registration>,
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Open sent, waiting for its Response.
    Opening,
    /// Registering the registration of this index.
    Registering(usize),
    /// Every registration answered: serving requests.
    Ready,
    /// Ended; the connection should be dropped.
    Closed,
}

/// Something worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The master opened the session.
    Opened {
        /// `h.sessionID`.
        session_id: u32,
    },
    /// The master refused to open a session.
    OpenRefused {
        /// `res.error`.
        error: u16,
    },
    /// A registration was accepted.
    Registered(Registration),
    /// A registration was refused (the others go on).
    RegistrationRefused {
        /// What.
        registration: Registration,
        /// `res.error`.
        error: u16,
    },
    /// Every registration has been answered; `registered` of them were accepted.
    Ready {
        /// How many were accepted.
        registered: usize,
    },
    /// The master closed the session.
    ClosedByMaster(CloseReason),
    /// We closed the session.
    Closed(CloseReason),
    /// A PDU from the master did not parse (answered with `parseError` where it could be).
    Malformed(ParseError),
    /// The master did not answer in time.
    TimedOut,
}

/// The header fields a Response echoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ids {
    session_id: u32,
    transaction_id: u32,
    packet_id: u32,
}

impl Ids {
    fn of(m: &Message) -> Ids {
        Ids {
            session_id: m.session_id,
            transaction_id: m.transaction_id,
            packet_id: m.packet_id,
        }
    }
}

/// A request waiting for [`Session::answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    message: Message,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    session_id: u32,
    next_packet_id: u32,
    /// The packet ID of our PDU awaiting a Response, and until when.
    awaiting: Option<(u32, Instant)>,
    registered: usize,
    input: Vec<u8>,
    output: Vec<u8>,
    events: VecDeque<Event>,
    requests: VecDeque<Request>,
    /// The master's sysUpTime in its last Response, and when that came.
    uptime: Option<(u32, Instant)>,
}

impl Session {
    /// A session that starts by sending an Open.
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        let mut s = Session {
            config,
            state: State::Opening,
            session_id: 0,
            next_packet_id: 1,
            awaiting: None,
            registered: 0,
            input: Vec::new(),
            output: Vec::new(),
            events: VecDeque::new(),
            requests: VecDeque::new(),
            uptime: None,
        };
        let open = Pdu::Open(Open {
            timeout: s.config.timeout,
            id: s.config.id.clone(),
            description: s.config.description.as_bytes().to_vec(),
        });
        s.send_request(open, now);
        s
    }

    /// Where it stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether it has ended.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// `h.sessionID` the master gave (0 before).
    pub fn session_id(&self) -> u32 {
        self.session_id
    }

    /// The master's sysUpTime at `now`, from its last Response (wrapping like TimeTicks).
    pub fn master_uptime(&self, now: Instant) -> Option<u32> {
        self.uptime.map(|(ticks, at)| {
            let since = now.saturating_duration_since(at).as_millis() / 10;
            ticks.wrapping_add(since as u32)
        })
    }

    fn send_request(&mut self, pdu: Pdu, now: Instant) {
        let packet_id = self.next_packet_id;
        self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
        Message::new(self.session_id, 0, packet_id, pdu).emit(&mut self.output);
        self.awaiting = Some((packet_id, now + RESPONSE_TIMEOUT));
    }

    /// Answers the request with these header fields (§6.2.16: the Response carries the
    /// request's session, transaction and packet IDs).
    fn respond(&mut self, to: Ids, error: u16, index: u16, varbinds: Vec<VarBind>) {
        Message::new(
            to.session_id,
            to.transaction_id,
            to.packet_id,
            Pdu::Response(Response {
                sys_uptime: 0,
                error,
                index,
                varbinds,
            }),
        )
        .emit(&mut self.output);
    }

    /// Ends the session: sends a Close with `reason` (unless already closed).
    pub fn close(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        if self.state != State::Opening {
            let packet_id = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
            Message::new(self.session_id, 0, packet_id, Pdu::Close(reason)).emit(&mut self.output);
        }
        self.state = State::Closed;
        self.awaiting = None;
        self.requests.clear();
        self.events.push_back(Event::Closed(reason));
    }

    /// Takes octets read from the master.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.input.extend_from_slice(data);
        loop {
            let len = match frame_len(&self.input) {
                Ok(Some(len)) => len,
                Ok(None) => {
                    if self.input.len() > MAX_BUFFERED {
                        self.malformed(ParseError::Truncated);
                    }
                    return;
                }
                Err(e) => {
                    self.malformed(e);
                    return;
                }
            };
            let pdu: Vec<u8> = self.input.drain(..len).collect();
            self.handle_pdu(&pdu, now);
            if self.state == State::Closed {
                return;
            }
        }
    }

    /// The stream cannot go on: close with `reasonParseError`.
    fn malformed(&mut self, e: ParseError) {
        self.events.push_back(Event::Malformed(e));
        self.input.clear();
        self.close(CloseReason::PARSE_ERROR);
    }

    fn handle_pdu(&mut self, bytes: &[u8], now: Instant) {
        let parsed = Packet::new_checked(bytes).and_then(|p| Message::parse(&p));
        let message = match parsed {
            Ok(m) => m,
            Err(e) => {
                // Framed, so the header can be read back: answer with parseError, unless it was
                // (or claimed to be) an answer to us, which nothing can be sent back for.
                let packet = Packet::new_checked(bytes).ok();
                let is_response = packet.as_ref().is_some_and(|p| p.pdu_type() == 18);
                self.events.push_back(Event::Malformed(e));
                match packet {
                    Some(p) if !is_response => {
                        let to = Ids {
                            session_id: p.session_id(),
                            transaction_id: p.transaction_id(),
                            packet_id: p.packet_id(),
                        };
                        self.respond(to, res_error::PARSE_ERROR, 0, Vec::new());
                    }
                    _ if self.awaiting.is_some() => self.close(CloseReason::PARSE_ERROR),
                    _ => {}
                }
                return;
            }
        };
        let ids = Ids::of(&message);
        match &message.pdu {
            Pdu::Response(r) => self.handle_response(ids, r.clone(), now),
            Pdu::Close(reason) => {
                self.state = State::Closed;
                self.awaiting = None;
                self.requests.clear();
                self.events.push_back(Event::ClosedByMaster(*reason));
            }
            // Open from the first Response on: the master may already send requests for what
            // is registered while later Registers are pending.
            _ if self.state == State::Opening || message.session_id != self.session_id => {
                self.respond(ids, res_error::NOT_OPEN, 0, Vec::new());
            }
            _ if message.context.is_some() => {
                self.respond(ids, res_error::UNSUPPORTED_CONTEXT, 0, Vec::new());
            }
            Pdu::Get(_) | Pdu::GetNext(_) | Pdu::GetBulk { .. } => {
                self.requests.push_back(Request { message });
            }
            Pdu::TestSet(varbinds) => {
                let index = if varbinds.is_empty() { 0 } else { 1 };
                self.respond(ids, res_error::NOT_WRITABLE, index, Vec::new());
            }
            // Nothing passed TestSet, so there is nothing to commit; undoing nothing succeeds.
            Pdu::CommitSet => self.respond(ids, res_error::COMMIT_FAILED, 0, Vec::new()),
            Pdu::UndoSet | Pdu::Ping => self.respond(ids, res_error::NO_ERROR, 0, Vec::new()),
            Pdu::CleanupSet => {}
            // A master does not send these to a subagent.
            Pdu::Open(_) | Pdu::Register(_) => {
                self.respond(ids, res_error::PARSE_ERROR, 0, Vec::new());
            }
        }
    }

    fn handle_response(&mut self, ids: Ids, r: Response, now: Instant) {
        match self.awaiting {
            Some((awaited, _)) if awaited == ids.packet_id => {}
            // An answer to nothing we are waiting for: nothing to do.
            _ => return,
        }
        self.awaiting = None;
        self.uptime = Some((r.sys_uptime, now));
        match self.state {
            State::Opening => {
                if r.error != res_error::NO_ERROR {
                    self.events.push_back(Event::OpenRefused { error: r.error });
                    self.state = State::Closed;
                    return;
                }
                // §7.1.1: the master's Response to the Open carries the new session's ID.
                self.session_id = ids.session_id;
                self.events.push_back(Event::Opened {
                    session_id: ids.session_id,
                });
                self.register_next(0, now);
            }
            State::Registering(i) => {
                if let Some(reg) = self.config.registrations.get(i).cloned() {
                    if r.error == res_error::NO_ERROR {
                        self.registered += 1;
                        self.events.push_back(Event::Registered(reg));
                    } else {
                        self.events.push_back(Event::RegistrationRefused {
                            registration: reg,
                            error: r.error,
                        });
                    }
                }
                self.register_next(i + 1, now);
            }
            State::Ready | State::Closed => {}
        }
    }

    fn register_next(&mut self, i: usize, now: Instant) {
        match self.config.registrations.get(i).cloned() {
            Some(reg) => {
                self.state = State::Registering(i);
                self.send_request(
                    Pdu::Register(Register {
                        instance: false,
                        timeout: 0,
                        priority: reg.priority,
                        subtree: reg.subtree,
                        range: reg.range,
                    }),
                    now,
                );
            }
            None => {
                self.state = State::Ready;
                self.events.push_back(Event::Ready {
                    registered: self.registered,
                });
            }
        }
    }

    /// Whether requests wait for [`Session::answer`].
    pub fn has_requests(&self) -> bool {
        !self.requests.is_empty()
    }

    /// Answers every waiting request from `mib`.
    pub fn answer(&mut self, mib: &MibView) {
        while let Some(Request { message }) = self.requests.pop_front() {
            let varbinds = match &message.pdu {
                Pdu::Get(ranges) => ranges
                    .iter()
                    .map(|r| VarBind::new(r.start.clone(), mib.get(&r.start)))
                    .collect(),
                Pdu::GetNext(ranges) => ranges.iter().map(|r| next(mib, r)).collect(),
                Pdu::GetBulk {
                    non_repeaters,
                    max_repetitions,
                    ranges,
                } => bulk(mib, usize::from(*non_repeaters), *max_repetitions, ranges),
                _ => Vec::new(),
            };
            self.respond(Ids::of(&message), res_error::NO_ERROR, 0, varbinds);
        }
    }

    /// Octets to write to the master, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.awaiting.map(|(_, at)| at)
    }

    /// A deadline passed: the master did not answer in time, so the session ends.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((_, at)) = self.awaiting
            && now >= at
        {
            self.events.push_back(Event::TimedOut);
            self.close(CloseReason::TIMEOUTS);
        }
    }
}

/// GetNext of one range (§7.2.3.2): the first instance in it, or `endOfMibView` named by its
/// start.
fn next(mib: &MibView, r: &SearchRange) -> VarBind {
    match mib.next(&r.start, r.include, &r.end) {
        Some((name, value)) => VarBind::new(name.clone(), value.clone()),
        None => VarBind::new(r.start.clone(), Value::EndOfMibView),
    }
}

/// GetBulk (§7.2.3.3): the first `non_repeaters` ranges once, then the others `max_repetitions`
/// times, each repetition going on from the previous one's names; it stops early once every
/// repeater is at `endOfMibView`, or at [`MAX_BULK_VARBINDS`].
fn bulk(
    mib: &MibView,
    non_repeaters: usize,
    max_repetitions: u16,
    ranges: &[SearchRange],
) -> Vec<VarBind> {
    let split = non_repeaters.min(ranges.len());
    let mut out: Vec<VarBind> = ranges[..split].iter().map(|r| next(mib, r)).collect();
    let mut repeaters: Vec<SearchRange> = ranges[split..].to_vec();
    if repeaters.is_empty() {
        return out;
    }
    for _ in 0..max_repetitions {
        if out.len() + repeaters.len() > MAX_BULK_VARBINDS {
            break;
        }
        let mut all_done = true;
        for r in &mut repeaters {
            let vb = next(mib, r);
            if vb.value != Value::EndOfMibView {
                all_done = false;
                r.start = vb.name.clone();
                r.include = false;
            }
            out.push(vb);
        }
        if all_done {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests;
