// Azure Storage auth shared by Azure plugins: connection strings (incl. UseDevelopmentStorage / azurite), SharedKey
// request signing and account SAS tokens, over OpenSSL.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "http.hpp"

namespace ork::common {

// The well-known development account of the storage emulators (azurite), published by Microsoft.
inline constexpr const char* kAzuriteAccount = "devstoreaccount1";
inline constexpr const char* kAzuriteKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

struct AzureAccount {
  std::string account;
  std::string key;            // base64 account key ("" when only a SAS is known)
  std::string sas;            // SAS query string without '?' ("" when signing with the key)
  std::string blob_endpoint;  // https://acct.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1
};

// Parses "Key=Value;..." (AccountName, AccountKey, DefaultEndpointsProtocol, EndpointSuffix, BlobEndpoint,
// SharedAccessSignature, UseDevelopmentStorage=true, DevelopmentStorageProxyUri). Throws std::invalid_argument
// naming the missing or unknown part; never echoes the key.
AzureAccount parse_azure_connection_string(std::string_view cs);

// The SharedKey string to sign for `req` (x-ms-date / x-ms-version must already be set).
std::string azure_shared_key_string_to_sign(const HttpRequest& req, std::string_view account);
// Sets x-ms-date (from now_ms) and Authorization: SharedKey account:signature.
void azure_sign_shared_key(HttpRequest& req, std::string_view account, std::string_view base64_key, int64_t now_ms);

// An account SAS (sv=2019-12-12) for `services` (e.g. "b"), `resource_types` ("sco"), `permissions` ("racwdl"),
// valid until expiry_ms. Returns the query string without '?'.
std::string azure_account_sas(std::string_view account, std::string_view base64_key, std::string_view services,
                              std::string_view resource_types, std::string_view permissions, int64_t expiry_ms,
                              std::string_view protocol = "https,http");

}  // namespace ork::common
