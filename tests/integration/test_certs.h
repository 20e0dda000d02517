// Certificates for the TLS tests, made by make_test_certs.sh (the openssl command) in a
// temporary directory of their own, removed with it. See the script for what it makes.
#pragma once

#include <grpcpp/security/credentials.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>

#include <catch2/catch.hpp>

namespace ringcache::it {

class TestCerts {
 public:
  TestCerts() {
    char dir[] = "/tmp/ringcache-certs-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    dir_ = dir;
    const std::string command = std::string("bash ") + RINGCACHE_TEST_CERTS_SCRIPT + " " + dir_;
    REQUIRE(std::system(command.c_str()) == 0);
  }
  ~TestCerts() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  TestCerts(const TestCerts&) = delete;
  TestCerts& operator=(const TestCerts&) = delete;

  // "node.pem" -> its path.
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string Read(const std::string& name) const {
    std::ifstream in(path(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // Client credentials trusting `ca` ("ca.pem"), with the client certificate `cert`
  // ("client": client.pem and client.key) if not empty.
  std::shared_ptr<grpc::ChannelCredentials> Client(const std::string& ca,
                                                   const std::string& cert = "") const {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = Read(ca);
    if (!cert.empty()) {
      options.pem_cert_chain = Read(cert + ".pem");
      options.pem_private_key = Read(cert + ".key");
    }
    return grpc::SslCredentials(options);
  }
  // The node flags for TLS with `pair` ("node": node.pem, node.key) and ca.pem.
  std::vector<std::string> NodeFlags(const std::string& pair = "node") const {
    return {"--tls-cert-file",   path(pair + ".pem"), "--tls-key-file",
            path(pair + ".key"), "--tls-ca-file",     path("ca.pem")};
  }

 private:
  std::string dir_;
};

}  // namespace ringcache::it
