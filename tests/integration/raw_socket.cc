#include "raw_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <optional>

namespace ringcache::it {
namespace {

using Clock = std::chrono::steady_clock;

// Closes the fd on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// A connected non-blocking socket, or -1 with `error` set.
int Connect(const std::string& address, Clock::time_point deadline, std::string* error) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    *error = "bad address " + address;
    return -1;
  }
  std::string host = address.substr(0, colon);
  const int port = std::atoi(address.c_str() + colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in6);
  } else {
    *error = "not a numeric address: " + address;
    return -1;
  }
  const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + strerror(errno);
    return -1;
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&storage), len) < 0 && errno != EINPROGRESS) {
    *error = "connect " + address + ": " + strerror(errno);
    close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  if (poll(&p, 1, RemainingMs(deadline)) != 1) {
    *error = "connect " + address + ": timed out";
    close(fd);
    return -1;
  }
  int so_error = 0;
  socklen_t so_len = sizeof(so_error);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len);
  if (so_error != 0) {
    *error = "connect " + address + ": " + strerror(so_error);
    close(fd);
    return -1;
  }
  return fd;
}

// Writes all of `bytes` unless the peer hangs up or the deadline passes.
bool WriteAll(int fd, std::string_view bytes, Clock::time_point deadline) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, RemainingMs(deadline)) != 1) return false;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
  return true;
}

// Reads into `out` until EOF/reset (returns true), `done(out)` holds, or the deadline.
template <typename Done>
bool ReadUntil(int fd, std::string* out, Clock::time_point deadline, Done done) {
  char buf[16384];
  while (!done(*out)) {
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1, RemainingMs(deadline));
    if (r == 0) return false;
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      return true;  // ECONNRESET and friends: the peer is gone.
    }
    out->append(buf, static_cast<size_t>(n));
  }
  return false;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Decodes a chunked body; nullopt if incomplete or malformed.
std::optional<std::string> DecodeChunked(std::string_view in) {
  std::string out;
  while (true) {
    const size_t eol = in.find("\r\n");
    if (eol == std::string_view::npos) return std::nullopt;
    const size_t size = std::strtoul(std::string(in.substr(0, eol)).c_str(), nullptr, 16);
    in.remove_prefix(eol + 2);
    if (size == 0) return out;
    if (in.size() < size + 2) return std::nullopt;
    out.append(in.substr(0, size));
    in.remove_prefix(size + 2);
  }
}

struct ParsedHttp {
  bool complete = false;
  HttpResponse response;
};

ParsedHttp ParseHttp(const std::string& raw, bool eof) {
  ParsedHttp parsed;
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) return parsed;
  const size_t status_end = raw.find("\r\n");
  const std::string status_line = raw.substr(0, status_end);
  // "HTTP/1.1 200 OK"
  const size_t sp = status_line.find(' ');
  if (sp != std::string::npos) parsed.response.status = std::atoi(status_line.c_str() + sp + 1);
  parsed.response.headers = raw.substr(status_end + 2, header_end - status_end - 2);
  const std::string body = raw.substr(header_end + 4);
  if (Lower(parsed.response.Header("Transfer-Encoding")).find("chunked") != std::string::npos) {
    if (auto decoded = DecodeChunked(body)) {
      parsed.response.body = *decoded;
      parsed.complete = true;
    }
    return parsed;
  }
  const std::string length = parsed.response.Header("Content-Length");
  if (!length.empty()) {
    const size_t n = std::strtoul(length.c_str(), nullptr, 10);
    if (body.size() >= n) {
      parsed.response.body = body.substr(0, n);
      parsed.complete = true;
    }
    return parsed;
  }
  parsed.response.body = body;
  parsed.complete = eof;
  return parsed;
}

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  const std::string want = Lower(std::string(name)) + ":";
  size_t pos = 0;
  while (pos < headers.size()) {
    size_t eol = headers.find("\r\n", pos);
    if (eol == std::string::npos) eol = headers.size();
    const std::string line = headers.substr(pos, eol - pos);
    if (Lower(line.substr(0, want.size())) == want) {
      std::string value = line.substr(want.size());
      const size_t first = value.find_first_not_of(" \t");
      return first == std::string::npos ? "" : value.substr(first);
    }
    pos = eol + 2;
  }
  return "";
}

double MetricValue(const std::string& metrics_address, const std::string& name) {
  const HttpResponse r = HttpGet(metrics_address, "/metrics");
  if (r.status != 200) return std::numeric_limits<double>::quiet_NaN();
  const size_t at = r.body.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(r.body.substr(at + name.size() + 2));
}

HttpResponse HttpGet(const std::string& address, const std::string& path,
                     std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  HttpResponse failed;
  const int raw_fd = Connect(address, deadline, &failed.error);
  if (raw_fd < 0) return failed;
  Fd fd(raw_fd);
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + address +
                              "\r\nUser-Agent: ringcache-integration-test\r\n"
                              "Accept: */*\r\nConnection: close\r\n\r\n";
  if (!WriteAll(fd.get(), request, deadline)) {
    failed.error = "GET " + path + ": write failed";
    return failed;
  }
  std::string raw;
  const bool eof = ReadUntil(fd.get(), &raw, deadline,
                             [](const std::string& r) { return ParseHttp(r, false).complete; });
  ParsedHttp parsed = ParseHttp(raw, eof);
  if (!parsed.complete) {
    failed.error = "GET " + path + ": incomplete response (" + std::to_string(raw.size()) +
                   " bytes" + (eof ? ", connection closed" : ", timed out") + ")";
    return failed;
  }
  return parsed.response;
}

RawExchange SendRawBytes(const std::string& address, std::string_view bytes,
                         std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  RawExchange result;
  const int raw_fd = Connect(address, deadline, &result.error);
  if (raw_fd < 0) return result;
  Fd fd(raw_fd);
  result.connected = true;
  WriteAll(fd.get(), bytes, deadline);
  result.peer_closed =
      ReadUntil(fd.get(), &result.received, deadline, [](const std::string&) { return false; });
  return result;
}

SilentListener::SilentListener() {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error_ = std::string("socket: ") + strerror(errno);
    return;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  // A large backlog: every connection attempt completes its handshake and then hangs.
  if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd_, 128) != 0 ||
      getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    error_ = std::string("bind/listen: ") + strerror(errno);
    close(fd_);
    fd_ = -1;
    return;
  }
  address_ = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
}

SilentListener::~SilentListener() {
  if (fd_ >= 0) close(fd_);
}

bool CanConnect(const std::string& address, std::chrono::milliseconds timeout) {
  std::string error;
  const int fd = Connect(address, Clock::now() + timeout, &error);
  if (fd < 0) return false;
  close(fd);
  return true;
}

}  // namespace ringcache::it
