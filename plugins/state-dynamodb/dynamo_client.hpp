// A DynamoDB JSON-protocol client (x-amz-json-1.0, SigV4 and HTTP from plugins/common): one call per API operation,
// retried with backoff on throttling, transaction conflicts, 5xx and transport errors.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <ork/plugin.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "aws_credentials.hpp"
#include "http.hpp"
#include "web_util.hpp"

namespace ork::dynamo {

using nlohmann::json;

// An error answer of the service: `type` is the short exception name (e.g. ConditionalCheckFailedException). Its ABI
// code: UNAVAILABLE when retrying may help, INVALID for request/credential/table errors, CONFLICT for failed
// conditions, else INTERNAL.
class DynamoError : public ork::PluginError {
 public:
  DynamoError(std::string type, const std::string& message, int status, json body, bool resent)
      : ork::PluginError(code_for(type, status), message),
        type(std::move(type)),
        status(status),
        body(std::move(body)),
        resent(resent) {}
  static ork_status code_for(const std::string& type, int status);
  std::string type;
  int status;
  json body;
  bool resent;  // the request was sent more than once: an earlier attempt may have taken effect
};

struct ClientOptions {
  std::string endpoint;  // "" = https://dynamodb.<region>.amazonaws.com
  std::string region;    // "" = from the environment / profile, else us-east-1
  common::AwsCredentialsOptions credentials;
  std::chrono::milliseconds timeout{10000};
  int max_attempts = 8;
};

class Client {
 public:
  explicit Client(ClientOptions o);
  // Sends `op` (e.g. "PutItem") with `body`; returns the parsed answer. Throws DynamoError for an error answer
  // (after retries for retryable ones) and ork::PluginError (UNAVAILABLE / INVALID) for transport or credential
  // failures.
  json call(std::string_view op, const json& body) const;

  const std::string& region() const { return region_; }
  std::string endpoint() const { return url_.origin() + url_.path; }
  // Answers retried because of throttling or a transaction conflict (for tests and logs).
  long throttle_retries() const { return throttled_->load(); }

  static bool retryable_type(std::string_view type);

 private:
  std::string region_;
  common::Url url_;
  std::unique_ptr<common::AwsCredentialsProvider> creds_;
  std::unique_ptr<std::atomic<long>> throttled_;
  std::unique_ptr<common::HttpClient> http_;
};

// The short exception name of an error body ("...#ThrottlingException" -> "ThrottlingException").
std::string error_type(const json& body);

}  // namespace ork::dynamo
