//! The inbound session driven with bytes alone (no registry, no socket): commands chunked with
//! surge_wire's writer, replies read back with its reader as a client would.

use std::collections::HashMap;
use std::io::Cursor;

use rml_rtmp::rml_amf0::{self, Amf0Value};
use surge_wire::message::{MSG_AMF0_COMMAND, MSG_AMF0_DATA, MSG_VIDEO};
use surge_wire::{ChunkLimits, ChunkReader, write_message};

use super::answers::DATA_CHUNK_STREAM;
use super::*;

const CHUNK: usize = 128;

/// A client: what it sends, and what it has read back from the session so far.
struct Client {
    session: InboundSession,
    replies: ChunkReader,
}

impl Client {
    fn new() -> Self {
        let (session, initial) = InboundSession::new(ChunkLimits::default()).expect("session");
        let mut c = Client {
            session,
            replies: ChunkReader::new(ChunkLimits::default()),
        };
        c.read(&initial);
        c
    }

    fn read(&mut self, bytes: &[Bytes]) {
        for b in bytes {
            self.replies.push(b);
        }
    }

    /// Feeds `bytes`; returns the events other than bytes to send (those are read back).
    fn feed(&mut self, bytes: &[u8]) -> Vec<InboundEvent> {
        let mut events = Vec::new();
        self.session
            .handle_bytes(bytes, &mut events)
            .expect("handled");
        self.keep_requests(events)
    }

    fn resume(&mut self) -> Vec<InboundEvent> {
        let mut events = Vec::new();
        self.session.resume(&mut events).expect("resumed");
        self.keep_requests(events)
    }

    fn keep_requests(&mut self, events: Vec<InboundEvent>) -> Vec<InboundEvent> {
        let mut rest = Vec::new();
        for e in events {
            match e {
                InboundEvent::Send(b) => self.read(&[b]),
                other => rest.push(other),
            }
        }
        rest
    }

    /// `(message stream id, level, code)` of every onStatus read back since the last call.
    fn statuses(&mut self) -> Vec<(u32, String, String)> {
        let mut out = Vec::new();
        while let Some(m) = self.replies.next_message().expect("valid replies") {
            if m.type_id != MSG_AMF0_COMMAND {
                continue;
            }
            let values = rml_amf0::deserialize(&mut Cursor::new(&m.payload[..])).expect("amf0");
            let [
                Amf0Value::Utf8String(name),
                _,
                _,
                Amf0Value::Object(info),
                ..,
            ] = &values[..]
            else {
                continue;
            };
            let text = |k: &str| match info.get(k) {
                Some(Amf0Value::Utf8String(s)) => s.clone(),
                _ => String::new(),
            };
            if name == "onStatus" {
                out.push((m.message_stream_id, text("level"), text("code")));
            }
        }
        out
    }

    /// Whether any reply read back so far came on rml_rtmp's data chunk stream.
    fn data_chunk_stream_used(&mut self) -> bool {
        let mut used = false;
        while let Some(m) = self.replies.next_message().expect("valid replies") {
            used |= m.chunk_stream_id == u32::from(DATA_CHUNK_STREAM);
        }
        used
    }
}

fn command(name: &str, txn: f64, args: Vec<Amf0Value>, msid: u32) -> Vec<u8> {
    let object = if name == "connect" {
        let mut o = HashMap::new();
        o.insert("app".to_string(), Amf0Value::Utf8String("live".into()));
        Amf0Value::Object(o)
    } else {
        Amf0Value::Null
    };
    let mut values = vec![
        Amf0Value::Utf8String(name.into()),
        Amf0Value::Number(txn),
        object,
    ];
    values.extend(args);
    let body = rml_amf0::serialize(&values).expect("amf0");
    let mut out = Vec::new();
    write_message(&mut out, 3, MSG_AMF0_COMMAND, msid, 0, &body, CHUNK);
    out
}

/// connect, createStream, then `verb` (publish or play) of `key` on message stream 1.
fn request(verb: &str, key: &str) -> Vec<u8> {
    let mut out = command("connect", 1.0, vec![], 0);
    out.extend(command("createStream", 2.0, vec![], 0));
    let mut args = vec![Amf0Value::Utf8String(key.into())];
    if verb == "publish" {
        args.push(Amf0Value::Utf8String("live".into()));
    }
    out.extend(command(verb, 3.0, args, 1));
    out
}

fn video(ts: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_message(&mut out, 6, MSG_VIDEO, 1, ts, body, CHUNK);
    out
}

fn metadata() -> Vec<u8> {
    let body = b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData\x03\x00\x00\x09";
    let mut out = Vec::new();
    write_message(&mut out, 4, MSG_AMF0_DATA, 1, 0, body, CHUNK);
    out
}

fn only_request(events: Vec<InboundEvent>) -> InboundEvent {
    let [e] = <[InboundEvent; 1]>::try_from(events).expect("exactly one event");
    e
}

#[test]
fn publish_is_asked_for_and_media_waits_for_the_answer() {
    let mut c = Client::new();
    let mut bytes = request("publish", "cam?token=1&key=s3cret");
    bytes.extend(metadata());
    bytes.extend(video(0, &[0x17, 0, 0, 0, 0, 1]));
    let InboundEvent::PublishRequested {
        request_id,
        app,
        stream,
        key,
    } = only_request(c.feed(&bytes))
    else {
        panic!("expected a publish request");
    };
    // The query never reaches the stream name; the key is handed over for the check.
    assert_eq!((app.as_str(), stream.as_str()), ("live", "cam"));
    assert_eq!(key.as_ref().map(|k| k.expose()), Some("s3cret"));
    assert_eq!(*c.session.role(), Role::Handshaking, "not publishing yet");

    let replies = c.session.accept_publish(request_id).expect("accepted");
    c.read(&replies);
    assert_eq!(
        c.statuses(),
        vec![(1, "status".into(), "NetStream.Publish.Start".into())]
    );
    assert_eq!(
        *c.session.role(),
        Role::Publishing {
            app: "live".into(),
            stream: "cam".into()
        }
    );
    // What the client sent after its publish comes out now, in order.
    let media = c.resume();
    let kinds: Vec<_> = media
        .iter()
        .map(|e| match e {
            InboundEvent::Media(m) => m.kind,
            other => panic!("expected media, got {other:?}"),
        })
        .collect();
    assert_eq!(kinds, [MediaKind::Data, MediaKind::Video]);

    let finished = c.feed(&command(
        "deleteStream",
        4.0,
        vec![Amf0Value::Number(1.0)],
        0,
    ));
    assert!(matches!(
        only_request(finished),
        InboundEvent::PublishFinished { ref stream, .. } if stream == "cam"
    ));
    assert!(
        c.feed(&video(40, &[0x27, 1, 0, 0, 0, 2])).is_empty(),
        "no media after finish"
    );
}

#[test]
fn refused_publish_gets_bad_name_and_its_media_is_dropped() {
    let mut c = Client::new();
    let mut bytes = request("publish", "cam");
    bytes.extend(video(0, &[0x17, 1, 0, 0, 0, 1]));
    let InboundEvent::PublishRequested { request_id, .. } = only_request(c.feed(&bytes)) else {
        panic!("expected a publish request");
    };
    let replies = c
        .session
        .reject_publish(request_id, "stream live/cam is already being published")
        .expect("rejected");
    c.read(&replies);
    assert_eq!(
        c.statuses(),
        vec![(1, "error".into(), "NetStream.Publish.BadName".into())]
    );
    assert!(
        c.resume().is_empty(),
        "media of a refused publisher is dropped"
    );
    assert_eq!(*c.session.role(), Role::Handshaking);
}

#[test]
fn refused_play_says_not_found_or_failed() {
    for (refusal, code) in [
        (PlayRefusal::NotFound, "NetStream.Play.StreamNotFound"),
        (PlayRefusal::Failed, "NetStream.Play.Failed"),
    ] {
        let mut c = Client::new();
        let InboundEvent::PlayRequested {
            request_id,
            app,
            stream,
            stream_id,
            home_region,
        } = only_request(c.feed(&request("play", "cam?x=1&region=eu-west")))
        else {
            panic!("expected a play request");
        };
        assert_eq!(
            (app.as_str(), stream.as_str(), stream_id),
            ("live", "cam", 1)
        );
        assert_eq!(
            home_region.as_deref(),
            Some("eu-west"),
            "an overflow placement's region"
        );
        let replies = c
            .session
            .reject_play(request_id, refusal, "no such stream")
            .expect("rejected");
        c.read(&replies);
        assert_eq!(c.statuses(), vec![(1, "error".into(), code.into())]);
    }
}

#[test]
fn accepted_play_starts_without_data_messages_and_a_second_request_is_refused() {
    let mut c = Client::new();
    let InboundEvent::PlayRequested { request_id, .. } =
        only_request(c.feed(&request("play", "cam")))
    else {
        panic!("expected a play request");
    };
    // Answering another request than the one waiting is an error, not an answer.
    assert!(matches!(
        c.session.accept_publish(request_id),
        Err(InboundError::UnknownRequest(_))
    ));
    let replies = c.session.accept_play(request_id).expect("accepted");
    c.read(&replies);
    assert!(
        !c.data_chunk_stream_used(),
        "|RtmpSampleAccess and Data.Start dropped"
    );
    assert!(matches!(c.session.role(), Role::Playing { .. }));

    let args = vec![
        Amf0Value::Utf8String("x".into()),
        Amf0Value::Utf8String("live".into()),
    ];
    let again = c.feed(&command("publish", 5.0, args, 1));
    assert!(
        again.is_empty(),
        "refused by the session itself, nothing to ask"
    );
    assert_eq!(
        c.statuses(),
        vec![(1, "error".into(), "NetStream.Publish.BadConnection".into())]
    );
}

#[test]
fn player_closing_its_stream_ends_the_session() {
    let mut c = Client::new();
    let InboundEvent::PlayRequested { request_id, .. } =
        only_request(c.feed(&request("play", "cam")))
    else {
        panic!("expected a play request");
    };
    c.session.accept_play(request_id).expect("accepted");
    let mut events = Vec::new();
    let close = command("closeStream", 0.0, vec![Amf0Value::Number(1.0)], 1);
    assert!(matches!(
        c.session.handle_bytes(&close, &mut events),
        Err(InboundError::PlayClosed)
    ));
}
