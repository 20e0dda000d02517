#include "pubsub_commands.h"

#include <cstdio>
#include <memory>

namespace ringcache::cli {

int CmdPublish(Connection& conn, const std::string& channel, const std::string& message) {
  pb::PublishRequest request;
  request.set_channel(channel);
  request.set_payload(message);
  pb::PublishResponse response;
  grpc::ClientContext context;
  conn.Prepare(&context);
  const grpc::Status status = conn.cache().Publish(&context, request, &response);
  if (!status.ok()) return conn.Report(status, Printable(channel));
  std::printf("%llu\n", static_cast<unsigned long long>(response.receivers()));
  if (std::fflush(stdout) != 0) return kExitError;
  if (response.nodes_unreached() > 0) {
    std::fprintf(stderr,
                 "%u node(s) did not answer (down, or slower than --publish-timeout-ms): "
                 "their subscribers may or may not have the message\n",
                 response.nodes_unreached());
  }
  return kExitOk;
}

int CmdSubscribe(Connection& conn, const std::vector<std::string>& channels,
                 const std::vector<std::string>& patterns, uint64_t count) {
  pb::SubscribeRequest request;
  for (const std::string& c : channels) request.add_channels(c);
  for (const std::string& p : patterns) request.add_patterns(p);
  grpc::ClientContext context;  // No deadline: the stream runs until Ctrl-C.
  std::unique_ptr<grpc::ClientReader<pb::SubscribeResponse>> stream =
      conn.cache().Subscribe(&context, request);
  pb::SubscribeResponse response;
  bool started = false;
  uint64_t last = 0;
  uint64_t printed = 0;
  while ((count == 0 || printed < count) && stream->Read(&response)) {
    if (response.has_started()) {
      started = true;
      const pb::SubscribeStarted& s = response.started();
      std::fprintf(stderr, "subscribed on %s: %u channel(s), %u pattern(s)%s; Ctrl-C to stop\n",
                   Printable(s.node_id()).c_str(), s.channels(), s.patterns(),
                   s.keyspace_events().empty()
                       ? ""
                       : (", keyspace events " + Printable(s.keyspace_events())).c_str());
    }
    for (const pb::PubSubMessage& m : response.messages()) {
      if (m.seq() > last + 1) {
        std::fprintf(stderr, "%s: missed up to %llu message(s) before this point\n",
                     std::string(kProgram).c_str(),
                     static_cast<unsigned long long>(m.seq() - last - 1));
      }
      last = m.seq();
      std::string line = Printable(m.channel()) + "\t" + Printable(m.payload());
      if (!m.pattern().empty() || m.version() != 0) line += "\t" + Printable(m.pattern());
      // A keyspace event's key version, in a fourth column (the pattern's may be empty).
      if (m.version() != 0) line += "\t" + std::to_string(m.version());
      line += "\n";
      if (!WriteStdout(line) || std::fflush(stdout) != 0) return kExitError;
      if (++printed == count) break;
    }
    if (response.last_seq() > last && (count == 0 || printed < count)) {
      std::fprintf(stderr, "%s: missed up to %llu message(s)\n", std::string(kProgram).c_str(),
                   static_cast<unsigned long long>(response.last_seq() - last));
      last = response.last_seq();
    }
  }
  if (count != 0 && printed >= count) {
    context.TryCancel();
    return kExitOk;
  }
  const grpc::Status status = stream->Finish();
  if (started && status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      status.error_message().find("shutting down") == std::string::npos) {
    // The stream was up: the node went away (not a connection that never worked).
    PrintError("UNAVAILABLE", "subscription ended: lost the node at " + conn.options().addr + " (" +
                                  Printable(status.error_message()) + ")");
    return kExitError;
  }
  return conn.Report(status, "subscription");
}

}  // namespace ringcache::cli
