//! The DynamoDB idempotency store.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use lpipe_core::async_trait;
use lpipe_core::idempotency::{
    Claim, ClaimStatus, HeldKey, IdempotencyKey, IdempotencyStore, StoreError,
};
use serde_json::Value;

const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";

/// Keeps idempotency keys in a DynamoDB table laid out as Powertools for AWS Lambda lays out
/// its own, so that a team can share one table: partition key `id` (string), the expiry in
/// Unix seconds in `expiration` (make it the table's TTL attribute), `status` (`INPROGRESS` or
/// `COMPLETED`), the in-progress lock's end in Unix milliseconds in
/// `in_progress_expiration`, the record's output as JSON text in `data`, and the owner token
/// of the run that holds an in-progress item in `owner` (lpipe's own: completions, releases and
/// lock extensions are conditional on it, so that a run whose lock timed out and whose key was
/// taken over cannot undo the new run's item). The names are settable.
///
/// Per record that runs: one conditional `PutItem` to start (no read first), one `UpdateItem`
/// to complete, or one `DeleteItem` when it did not succeed. A key already held is answered
/// from the failed condition's item (`ReturnValuesOnConditionCheckFailure`), without a read.
/// A lock is extended (the SQS worker's heartbeats, for a batch that runs past its deadline)
/// with one conditional `UpdateItem` per key.
///
/// IAM: `dynamodb:PutItem`, `dynamodb:UpdateItem`, `dynamodb:DeleteItem` and
/// `dynamodb:GetItem` (asked only when the service returns no item with a failed condition) on
/// the table.
#[derive(Clone, Debug)]
pub struct DynamoDbStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    names: Names,
}

#[derive(Clone, Debug)]
struct Names {
    key: String,
    expiry: String,
    status: String,
    lock: String,
    data: String,
    owner: String,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            key: "id".into(),
            expiry: "expiration".into(),
            status: "status".into(),
            lock: "in_progress_expiration".into(),
            data: "data".into(),
            owner: "owner".into(),
        }
    }
}

impl DynamoDbStore {
    /// A store in this table, through this client.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbStore {
            client,
            table: table.into(),
            names: Names::default(),
        }
    }

    /// A store in this table, through the crate's [shared client](crate::shared_client) (the
    /// standard AWS configuration).
    pub async fn from_env(table: impl Into<String>) -> Self {
        Self::new(crate::shared_client().await, table)
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The partition key's name (`id` unless set).
    pub fn key_attribute(mut self, name: impl Into<String>) -> Self {
        self.names.key = name.into();
        self
    }

    /// The expiry's name (`expiration` unless set): the table's TTL attribute.
    pub fn expiry_attribute(mut self, name: impl Into<String>) -> Self {
        self.names.expiry = name.into();
        self
    }

    /// The status's name (`status` unless set).
    pub fn status_attribute(mut self, name: impl Into<String>) -> Self {
        self.names.status = name.into();
        self
    }

    /// The in-progress lock's name (`in_progress_expiration` unless set).
    pub fn lock_attribute(mut self, name: impl Into<String>) -> Self {
        self.names.lock = name.into();
        self
    }

    /// The owner token's name (`owner` unless set).
    pub fn owner_attribute(mut self, name: impl Into<String>) -> Self {
        self.names.owner = name.into();
        self
    }

    /// The output's name (`data` unless set).
    pub fn data_attribute(mut self, name: impl Into<String>) -> Self {
        self.names.data = name.into();
        self
    }

    /// What an item held by another run says.
    fn held(
        &self,
        item: &HashMap<String, AttributeValue>,
        claim: &Claim,
    ) -> Result<ClaimStatus, StoreError> {
        let n = &self.names;
        let number = |name: &str| -> Option<u64> {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v as u64)
        };
        match item.get(&n.status).and_then(|v| v.as_s().ok()).map(String::as_str) {
            Some(COMPLETED) => {
                let output = match item.get(&n.data).and_then(|v| v.as_s().ok()) {
                    Some(text) => Some(serde_json::from_str::<Value>(text).map_err(|e| {
                        StoreError::new(format!(
                            "the completed item of key {} holds output that is not JSON: {e}",
                            claim.key
                        ))
                    })?),
                    None => None,
                };
                Ok(ClaimStatus::Completed(output))
            }
            Some(IN_PROGRESS) => Ok(ClaimStatus::InProgress {
                lock_until_ms: number(&n.lock).unwrap_or(claim.now_ms),
            }),
            other => Err(StoreError::new(format!(
                "the item of key {} in table {} has status {:?}, neither {IN_PROGRESS} nor {COMPLETED}",
                claim.key, self.table, other
            ))),
        }
    }

    fn error<E>(&self, what: &str, key: &IdempotencyKey, e: SdkError<E>) -> StoreError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        StoreError::new(format!(
            "DynamoDB {what} of key {key} in table {}: {}",
            self.table,
            DisplayErrorContext(e)
        ))
    }
}

#[async_trait]
impl IdempotencyStore for DynamoDbStore {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "dynamodb",
            "table": self.table,
            "key_attribute": self.names.key,
            "ttl_attribute": self.names.expiry,
        })
    }

    async fn begin(&self, claim: &Claim) -> Result<ClaimStatus, StoreError> {
        let n = &self.names;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(&n.key, AttributeValue::S(claim.key.to_string()))
            .item(&n.status, AttributeValue::S(IN_PROGRESS.into()))
            .item(&n.expiry, AttributeValue::N(claim.expires_at_s.to_string()))
            .item(&n.lock, AttributeValue::N(claim.lock_until_ms.to_string()))
            .item(&n.owner, AttributeValue::S(claim.owner.to_string()))
            .condition_expression(
                "attribute_not_exists(#key) OR #expiry < :now_s OR (#status = :in_progress AND #lock < :now_ms)",
            )
            .expression_attribute_names("#key", &n.key)
            .expression_attribute_names("#expiry", &n.expiry)
            .expression_attribute_names("#status", &n.status)
            .expression_attribute_names("#lock", &n.lock)
            .expression_attribute_values(":now_s", AttributeValue::N((claim.now_ms / 1000).to_string()))
            .expression_attribute_values(":now_ms", AttributeValue::N(claim.now_ms.to_string()))
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(ClaimStatus::Started),
            Err(SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                let PutItemError::ConditionalCheckFailedException(failed) = se.err() else {
                    unreachable!("matched above")
                };
                if let Some(item) = failed.item() {
                    return self.held(item, claim);
                }
                // A service that returns no item with the failed condition: read it.
                let got = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key(&n.key, AttributeValue::S(claim.key.to_string()))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| self.error("GetItem", &claim.key, e))?;
                match got.item() {
                    Some(item) => self.held(item, claim),
                    // Deleted in between: the caller's record fails and is retried.
                    None => Err(StoreError::new(format!(
                        "the item of key {} was held, then gone: retry",
                        claim.key
                    ))),
                }
            }
            Err(e) => Err(self.error("PutItem", &claim.key, e)),
        }
    }

    async fn complete(
        &self,
        held: &HeldKey,
        output: Option<&Value>,
        expires_at_s: u64,
    ) -> Result<(), StoreError> {
        let n = &self.names;
        let key = &held.key;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(&n.key, AttributeValue::S(key.to_string()))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#status", &n.status)
            .expression_attribute_names("#expiry", &n.expiry)
            .expression_attribute_names("#lock", &n.lock)
            .expression_attribute_names("#data", &n.data)
            .expression_attribute_names("#owner", &n.owner)
            .expression_attribute_values(":completed", AttributeValue::S(COMPLETED.into()))
            .expression_attribute_values(":expiry", AttributeValue::N(expires_at_s.to_string()))
            .expression_attribute_values(":owner", AttributeValue::S(held.owner.to_string()));
        update = match output {
            Some(output) => update
                .update_expression(
                    "SET #status = :completed, #expiry = :expiry, #data = :data REMOVE #lock, #owner",
                )
                .expression_attribute_values(":data", AttributeValue::S(output.to_string())),
            None => update.update_expression(
                "SET #status = :completed, #expiry = :expiry REMOVE #lock, #data, #owner",
            ),
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Err(StoreError::lost(key))
            }
            Err(e) => Err(self.error("UpdateItem", key, e)),
        }
    }

    async fn extend(&self, held: &[&HeldKey], lock_until_ms: u64) -> Result<(), StoreError> {
        let n = &self.names;
        let mut lost = Vec::new();
        // One key after another: a worker's batch holds at most 10, and a heartbeat has a third
        // of the visibility timeout.
        for h in held {
            let key = &h.key;
            let extended = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(&n.key, AttributeValue::S(key.to_string()))
                .update_expression("SET #lock = :until")
                .condition_expression(
                    "#status = :in_progress AND #lock < :until AND #owner = :owner",
                )
                .expression_attribute_names("#status", &n.status)
                .expression_attribute_names("#lock", &n.lock)
                .expression_attribute_names("#owner", &n.owner)
                .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
                .expression_attribute_values(":until", AttributeValue::N(lock_until_ms.to_string()))
                .expression_attribute_values(":owner", AttributeValue::S(h.owner.to_string()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match extended {
                Ok(_) => {}
                Err(SdkError::ServiceError(se))
                    if matches!(
                        se.err(),
                        UpdateItemError::ConditionalCheckFailedException(_)
                    ) =>
                {
                    // Settled meanwhile (or gone, or locked until later already): left alone;
                    // in progress under another owner: lost.
                    let UpdateItemError::ConditionalCheckFailedException(failed) = se.err() else {
                        unreachable!("matched above")
                    };
                    let item = failed.item();
                    let attribute =
                        |name: &str| item.and_then(|i| i.get(name)).and_then(|v| v.as_s().ok());
                    if attribute(&n.status).map(String::as_str) == Some(IN_PROGRESS)
                        && attribute(&n.owner).is_some_and(|o| **o != *h.owner)
                    {
                        lost.push(key.to_string());
                    }
                }
                Err(e) => return Err(self.error("UpdateItem (lock extension)", key, e)),
            }
        }
        match lost.is_empty() {
            true => Ok(()),
            false => Err(StoreError::Lost {
                key: lost.join(", "),
            }),
        }
    }

    async fn release(&self, held: &HeldKey) -> Result<(), StoreError> {
        let key = &held.key;
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(&self.names.key, AttributeValue::S(key.to_string()))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", &self.names.owner)
            .expression_attribute_values(":owner", AttributeValue::S(held.owner.to_string()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    DeleteItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Err(StoreError::lost(key))
            }
            Err(e) => Err(self.error("DeleteItem", key, e)),
        }
    }
}
