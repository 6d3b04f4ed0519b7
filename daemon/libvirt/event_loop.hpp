// libvirt delivers domain events (and notices a dead connection) only while its event loop
// runs. The default implementation is process-wide and must be registered before the first
// connection: this runs it on one thread of its own for the life of the process. Handlers
// must not block; VMInsight's only post to the daemon's io_context.
#pragma once

namespace vmid::libvirt {

/// Registers libvirt's default event implementation and starts its thread, once. Call before
/// opening a connection that should receive events. Throws LibvirtError.
void start_event_loop();

}  // namespace vmid::libvirt
