//! DNS responses: the header and question every answer echoes, the EDNS exchange, and
//! fitting an answer into what the client's transport can carry.

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};

use super::zone::Answer;

/// The largest UDP answer sent, whatever a client offers: the size the 2020 DNS flag day
/// settled on, under common path MTUs so that answers are never fragmented.
pub(super) const MAX_UDP_PAYLOAD: u16 = 1232;
/// What a client without EDNS accepts over UDP (RFC 1035).
const CLASSIC_UDP_PAYLOAD: u16 = 512;
/// The largest TCP message (its length prefix is 16 bits).
const MAX_TCP_MESSAGE: usize = u16::MAX as usize;

/// How a query came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    Udp,
    Tcp,
}

/// The largest response `request` may get over `transport`.
pub(super) fn size_limit(request: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => MAX_TCP_MESSAGE,
        Transport::Udp => {
            let offered = request.extensions().as_ref().map_or(CLASSIC_UDP_PAYLOAD, Edns::max_payload);
            usize::from(offered.clamp(CLASSIC_UDP_PAYLOAD, MAX_UDP_PAYLOAD))
        }
    }
}

/// A response to `request` with `code` and no records: its ID, opcode, question, and RD and
/// CD bits; recursion is available (through the upstreams); EDNS when the request used it.
pub(super) fn response_to(request: &Message, code: ResponseCode) -> Message {
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_checking_disabled(request.checking_disabled())
        .set_response_code(code)
        .add_queries(request.queries().iter().cloned());
    if request.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD).set_version(0);
        response.set_edns(edns);
    }
    response
}

/// The authoritative response carrying `answer`.
pub(super) fn authoritative(request: &Message, answer: Answer) -> Message {
    let mut response = response_to(request, answer.code);
    response.set_authoritative(true);
    response.insert_answers(answer.answers);
    response.insert_name_servers(answer.authority);
    response.insert_additionals(answer.additionals);
    response
}

/// FORMERR for bytes that do not decode as a query, or nothing when they do not even hold a
/// header (there is no ID to answer to) or are a response themselves (never answer those,
/// or two servers could bounce errors at each other forever).
pub(super) fn format_error(raw: &[u8]) -> Option<Vec<u8>> {
    const HEADER_LEN: usize = 12;
    const QR_BIT: u8 = 0x80;
    if raw.len() < HEADER_LEN || raw[2] & QR_BIT != 0 {
        return None;
    }
    let id = u16::from_be_bytes([raw[0], raw[1]]);
    let mut response = Message::new();
    response.set_id(id).set_message_type(MessageType::Response).set_response_code(ResponseCode::FormErr);
    response.to_vec().ok()
}

/// `message` encoded in at most `limit` bytes: whole if it fits, else without its
/// additional records (they are optional), else cut to the header and question with TC set
/// so that the client asks again over TCP. `None` if it cannot be encoded at all.
pub(super) fn encode(message: &Message, limit: usize) -> Option<Vec<u8>> {
    let whole = message.to_vec().ok()?;
    if whole.len() <= limit {
        return Some(whole);
    }
    if !message.additionals().is_empty() {
        let mut lean = message.clone();
        lean.take_additionals();
        let bytes = lean.to_vec().ok()?;
        if bytes.len() <= limit {
            return Some(bytes);
        }
    }
    message.truncate().to_vec().ok()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    use super::*;

    fn request(edns_payload: Option<u16>) -> Message {
        let mut request = Message::new();
        request.set_id(7).set_recursion_desired(true);
        request.add_query(Query::query(Name::from_ascii("big.default.svc.cluster.local.").unwrap(), RecordType::A));
        if let Some(payload) = edns_payload {
            let mut edns = Edns::new();
            edns.set_max_payload(payload);
            request.set_edns(edns);
        }
        request
    }

    fn answer_with(count: u8, request: &Message) -> Message {
        let name = request.queries()[0].name().clone();
        let records = (0..count).map(|i| Record::from_rdata(name.clone(), 5, RData::A(A(Ipv4Addr::new(10, 0, 0, i)))));
        let answer =
            Answer { code: ResponseCode::NoError, answers: records.collect(), authority: vec![], additionals: vec![] };
        authoritative(request, answer)
    }

    #[test]
    fn udp_limit_follows_edns_within_bounds() {
        assert_eq!(size_limit(&request(None), Transport::Udp), 512);
        assert_eq!(size_limit(&request(Some(4096)), Transport::Udp), usize::from(MAX_UDP_PAYLOAD));
        assert_eq!(size_limit(&request(Some(100)), Transport::Udp), 512);
        assert_eq!(size_limit(&request(None), Transport::Tcp), 65_535);
    }

    #[test]
    fn an_answer_too_big_for_udp_is_cut_with_tc() {
        let req = request(None);
        let response = answer_with(60, &req);
        let bytes = encode(&response, size_limit(&req, Transport::Udp)).unwrap();
        assert!(bytes.len() <= 512);
        let decoded = Message::from_vec(&bytes).unwrap();
        assert!(decoded.truncated());
        assert!(decoded.answers().is_empty());
        assert_eq!(decoded.id(), 7);
        assert_eq!(decoded.queries(), req.queries());
        let whole = Message::from_vec(&encode(&response, size_limit(&req, Transport::Tcp)).unwrap()).unwrap();
        assert!(!whole.truncated());
        assert_eq!(whole.answers().len(), 60);
        assert!(whole.authoritative() && whole.recursion_desired() && whole.recursion_available());
    }

    #[test]
    fn additional_records_are_dropped_before_answers() {
        let req = request(None);
        let mut response = answer_with(20, &req);
        let extra = answer_with(20, &req).take_answers();
        response.insert_additionals(extra);
        let decoded = Message::from_vec(&encode(&response, 512).unwrap()).unwrap();
        assert!(!decoded.truncated());
        assert_eq!((decoded.answers().len(), decoded.additionals().len()), (20, 0));
    }

    #[test]
    fn garbage_gets_formerr_but_responses_and_scraps_get_nothing() {
        let mut raw = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        let reply = Message::from_vec(&format_error(&raw).unwrap()).unwrap();
        assert_eq!((reply.id(), reply.response_code()), (0xabcd, ResponseCode::FormErr));
        raw[2] |= 0x80;
        assert_eq!(format_error(&raw), None);
        assert_eq!(format_error(&[1, 2, 3]), None);
    }
}
