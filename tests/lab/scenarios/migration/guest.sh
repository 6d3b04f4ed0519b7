#!/bin/sh
# Guest side of the migration scenario: a syscall-heavy load (process churn) and a heartbeat,
# so the host can tell the guest keeps running across save, restore and its own stops.
/bin/vmi-churn &
/bin/vmi-churn &
echo "GUEST-CHURNING"
exec /bin/vmi-heartbeat
