//! Queue URLs, looked up once: the sink's targets and the source's `eventSourceARN`s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError;

/// Queue URLs by target, looked up with GetQueueUrl the first time and remembered (a queue's
/// URL does not change). Calls on their way at once wait for one lookup; a failed lookup is
/// tried again by the next call.
#[derive(Debug, Default)]
pub(crate) struct QueueUrls(Mutex<HashMap<String, Arc<OnceCell<String>>>>);

/// Why a queue's URL could not be had.
pub(crate) enum UrlError {
    /// GetQueueUrl failed (boxed: the SDK's error is large, and errors are rare).
    Api(Box<SdkError<GetQueueUrlError>>),
    /// GetQueueUrl answered without a URL.
    NoUrl,
}

impl QueueUrls {
    /// The URL of the queue a target names: a URL (itself), an ARN (the queue of that name in
    /// the ARN's account) or a name.
    pub(crate) async fn of(
        &self,
        client: &aws_sdk_sqs::Client,
        target: &str,
    ) -> Result<String, UrlError> {
        if target.starts_with("https://") || target.starts_with("http://") {
            return Ok(target.to_owned());
        }
        let cell = {
            let mut urls = self.0.lock().expect("url cache lock");
            // A known target's cell without copying its name: this runs on every call.
            match urls.get(target) {
                Some(cell) => Arc::clone(cell),
                None => Arc::clone(urls.entry(target.to_owned()).or_default()),
            }
        };
        let url = cell
            .get_or_try_init(|| async {
                let request = match parse_queue_arn(target) {
                    Some((account, name)) => client
                        .get_queue_url()
                        .queue_name(name)
                        .queue_owner_aws_account_id(account),
                    None => client.get_queue_url().queue_name(target),
                };
                request
                    .send()
                    .await
                    .map_err(|e| UrlError::Api(Box::new(e)))?
                    .queue_url
                    .ok_or(UrlError::NoUrl)
            })
            .await?;
        Ok(url.clone())
    }
}

/// `arn:aws:sqs:REGION:ACCOUNT:NAME` → (account, name).
pub(crate) fn parse_queue_arn(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("sqs"), Some(_region), Some(account), Some(name)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (!account.is_empty() && !name.is_empty()).then_some((account, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arns_give_account_and_name() {
        assert_eq!(
            parse_queue_arn("arn:aws:sqs:us-east-2:123456789012:my-queue"),
            Some(("123456789012", "my-queue"))
        );
        assert_eq!(
            parse_queue_arn("arn:aws:sqs:us-east-2:123456789012:q.fifo"),
            Some(("123456789012", "q.fifo"))
        );
        assert_eq!(
            parse_queue_arn("arn:aws:sns:us-east-2:123456789012:topic"),
            None
        );
        assert_eq!(parse_queue_arn("my-queue"), None);
    }
}
