//! Queue URLs, looked up once: the sink's targets and the source's `eventSourceARN`s.

use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError;

/// Queue URLs by target, looked up with GetQueueUrl the first time and remembered.
#[derive(Debug, Default)]
pub(crate) struct QueueUrls(lpipe_aws::Lookups);

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
        self.0
            .get(target, || async {
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
            .await
    }
}

/// `arn:aws:sqs:REGION:ACCOUNT:NAME` → (account, name).
pub(crate) fn parse_queue_arn(arn: &str) -> Option<(&str, &str)> {
    lpipe_aws::parse_arn(arn, "sqs")
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
