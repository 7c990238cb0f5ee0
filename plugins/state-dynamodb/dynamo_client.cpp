#include "dynamo_client.hpp"

#include <ork/plugin.hpp>

#include "crypto.hpp"
#include "sigv4.hpp"

namespace ork::dynamo {

std::string error_type(const json& body) {
  if (!body.is_object()) return "";
  std::string t = body.value("__type", std::string());
  size_t hash = t.rfind('#');
  return hash == std::string::npos ? t : t.substr(hash + 1);
}

bool Client::retryable_type(std::string_view type) {
  return type == "ProvisionedThroughputExceededException" || type == "ThrottlingException" ||
         type == "RequestLimitExceeded" || type == "TransactionConflictException" ||
         type == "TransactionInProgressException" || type == "InternalServerError" || type == "ServiceUnavailable" ||
         type == "LimitExceededException";
}

ork_status DynamoError::code_for(const std::string& type, int status) {
  if (Client::retryable_type(type) || status >= 500) return ORK_ERR_UNAVAILABLE;
  if (type == "ConditionalCheckFailedException" || type == "TransactionCanceledException") return ORK_ERR_CONFLICT;
  if (type == "ValidationException" || type == "ResourceNotFoundException" || type == "AccessDeniedException" ||
      type == "UnrecognizedClientException" || type == "MissingAuthenticationTokenException" ||
      type == "InvalidSignatureException" || type == "SerializationException" ||
      type == "ItemCollectionSizeLimitExceededException")
    return ORK_ERR_INVALID;
  return ORK_ERR_INTERNAL;
}

namespace {
json parse_body(const std::string& text) {
  if (text.empty()) return json::object();
  try {
    return json::parse(text);
  } catch (const json::exception&) {
    return json{{"message", text.substr(0, 200)}};
  }
}
}  // namespace

Client::Client(ClientOptions o) : throttled_(std::make_unique<std::atomic<long>>(0)) {
  creds_ = std::make_unique<common::AwsCredentialsProvider>(o.credentials);
  region_ = o.region.empty() ? creds_->region_hint() : o.region;
  if (region_.empty()) region_ = "us-east-1";
  try {
    url_ = common::parse_url(o.endpoint.empty() ? "https://dynamodb." + region_ + ".amazonaws.com/" : o.endpoint);
  } catch (const std::exception& e) {
    ork::throw_invalid(std::string("state-dynamodb: \"endpoint\": ") + e.what());
  }
  if (url_.path.empty()) url_.path = "/";
  common::HttpOptions ho;
  ho.timeout = o.timeout;
  ho.retry.max_attempts = o.max_attempts;
  ho.retry.base_delay = std::chrono::milliseconds(25);
  ho.retry.max_delay = std::chrono::milliseconds(2000);
  std::atomic<long>* counter = throttled_.get();
  ho.retry_if = [counter](const common::HttpResponse& r) {
    if (r.status != 400) return false;
    bool retry = retryable_type(error_type(parse_body(r.body)));
    if (retry) ++*counter;
    return retry;
  };
  http_ = std::make_unique<common::HttpClient>(ho);
}

json Client::call(std::string_view op, const json& body) const {
  std::string text = body.dump(-1, ' ', false, json::error_handler_t::strict);
  std::string hash = common::sha256_hex(text);
  common::AwsCredentials c;
  try {
    c = creds_->get();
  } catch (const std::exception& e) {
    ork::throw_invalid(std::string("state-dynamodb: ") + e.what());
  }
  common::HttpRequest req{
      "POST",
      url_.origin() + url_.path,
      {{"Content-Type", "application/x-amz-json-1.0"}, {"X-Amz-Target", "DynamoDB_20120810." + std::string(op)}},
      text,
      ""};
  common::HttpResponse r;
  try {
    r = http_->send(req, [&](common::HttpRequest& q) {
      common::sigv4_sign_request(q, c, region_, "dynamodb", common::now_epoch_ms(), false, hash);
    });
  } catch (const common::HttpError& e) {
    ork::throw_unavailable(std::string("state-dynamodb: ") + std::string(op) + ": " + e.what());
  }
  json answer = parse_body(r.body);
  if (r.ok()) return answer;
  std::string type = error_type(answer);
  std::string msg = answer.value("message", answer.value("Message", std::string()));
  throw DynamoError(type.empty() ? "HTTP " + std::to_string(r.status) : type,
                    "state-dynamodb: " + std::string(op) + ": HTTP " + std::to_string(r.status) + " " + type +
                        (msg.empty() ? "" : ": " + msg),
                    r.status, std::move(answer), r.attempts > 1);
}

}  // namespace ork::dynamo
