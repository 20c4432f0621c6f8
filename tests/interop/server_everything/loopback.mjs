// Preloaded (`node --import ./loopback.mjs`) before server-everything, whose Streamable HTTP
// transport calls `app.listen(PORT)` and so would listen on every interface: a listen on a
// bare port is made to bind 127.0.0.1 only, as every server in the interop tests does.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const [port, host] = args;
  if ((typeof port === "number" || typeof port === "string") && typeof host !== "string") {
    args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
