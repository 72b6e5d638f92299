//! Writing log entries in bulk: every entry of a batch (and the attribute
//! keys that index it) goes in with one statement.

use std::collections::HashSet;

use deadpool_postgres::GenericClient;
use qstash_core::clock::Millis;
use qstash_core::message::LogState;

use super::sql;
use crate::rows::EventDetail;
use crate::Result;

/// Log entries to write, column by column, with the attribute keys of
/// their messages.
#[derive(Debug, Default)]
pub struct Events {
    user_id: Vec<String>,
    message_id: Vec<String>,
    time: Vec<Millis>,
    state: Vec<&'static str>,
    error: Vec<Option<String>>,
    next_delivery_time: Vec<Option<Millis>>,
    response_status: Vec<Option<i32>>,
    response_header: Vec<Option<String>>,
    response_body: Vec<Option<Vec<u8>>>,
    key_message: Vec<String>,
    key: Vec<String>,
    keyed: HashSet<String>,
}

impl Events {
    pub fn is_empty(&self) -> bool {
        self.user_id.is_empty()
    }

    /// One entry of message `id`, indexed by its attribute `keys` (given
    /// once per message; later entries of the same message reuse them).
    pub fn push(
        &mut self,
        user_id: &str,
        id: &str,
        keys: &[String],
        at: Millis,
        state: LogState,
        d: &EventDetail,
    ) {
        self.user_id.push(user_id.to_string());
        self.message_id.push(id.to_string());
        self.time.push(at);
        self.state.push(state.as_str());
        self.error.push(d.error.clone());
        self.next_delivery_time.push(d.next_delivery_time);
        self.response_status.push(d.response_status.map(i32::from));
        self.response_header.push(d.response_header.clone());
        self.response_body.push(d.response_body.clone());
        if self.keyed.insert(id.to_string()) {
            for k in keys {
                self.key_message.push(id.to_string());
                self.key.push(k.clone());
            }
        }
    }

    /// Writes every entry and its keys in one statement. The keys join the
    /// new rows by message id, so each entry gets its message's keys and
    /// the `seq` it was given.
    pub async fn write<C: GenericClient>(&self, c: &C) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        sql::execute(
            c,
            "WITH ins AS (
                INSERT INTO events (user_id, message_id, time, state, error, next_delivery_time,
                    response_status, response_header, response_body)
                SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[],
                    $6::int8[], $7::int4[], $8::text[], $9::bytea[])
                RETURNING seq, user_id, message_id, time)
             INSERT INTO event_keys (user_id, key, time, seq)
             SELECT ins.user_id, k.key, ins.time, ins.seq
             FROM ins JOIN unnest($10::text[], $11::text[]) AS k(message_id, key)
               ON k.message_id = ins.message_id
             ON CONFLICT DO NOTHING",
            &[
                &self.user_id,
                &self.message_id,
                &self.time,
                &self.state,
                &self.error,
                &self.next_delivery_time,
                &self.response_status,
                &self.response_header,
                &self.response_body,
                &self.key_message,
                &self.key,
            ],
        )
        .await?;
        Ok(())
    }
}
