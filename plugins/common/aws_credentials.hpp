// The AWS credentials chain shared by the AWS plugins: explicit config, environment, shared credentials/config files
// (profile), the ECS/EKS container endpoint, then EC2 instance metadata (IMDSv2). Cached; refreshed before expiry.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "http.hpp"
#include "sigv4.hpp"

namespace ork::common {

// Looks up an environment variable (std::getenv unless a test passes its own).
using EnvFn = std::function<std::optional<std::string>(const std::string&)>;
EnvFn process_env();

struct AwsCredentialsOptions {
  std::string access_key_id, secret_access_key, session_token;  // explicit (plugin config): used as given
  std::string profile;                                          // default: $AWS_PROFILE, else "default"
  std::string credentials_file;  // default: $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials
  std::string config_file;       // default: $AWS_CONFIG_FILE, else ~/.aws/config
  std::chrono::milliseconds metadata_timeout{1000};
  EnvFn env = process_env();
};

class AwsCredentialsProvider {
 public:
  explicit AwsCredentialsProvider(AwsCredentialsOptions options);
  // Current credentials; throws std::runtime_error naming every source tried when none has any.
  AwsCredentials get();
  // The region from $AWS_REGION, $AWS_DEFAULT_REGION or the profile's `region`; "" when none says.
  std::string region_hint() const;

 private:
  AwsCredentials resolve();
  std::optional<AwsCredentials> from_profile(std::string& tried) const;
  std::optional<AwsCredentials> from_container(std::string& tried) const;
  std::optional<AwsCredentials> from_imds(std::string& tried) const;
  std::string env(const std::string& name) const;

  AwsCredentialsOptions o_;
  HttpClient http_;
  std::mutex mu_;
  AwsCredentials cached_;
};

// "[name]" sections of an INI file as name -> key -> value ("" section for keys before any header).
std::map<std::string, std::map<std::string, std::string>> parse_ini(const std::string& text);

}  // namespace ork::common
