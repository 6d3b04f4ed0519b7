#!/bin/sh
# Guest side: constant process churn (every fork and exec switches address space), and a
# heartbeat so the host can tell the guest keeps running through everything it does.
/bin/vmi-churn &
/bin/vmi-churn &
echo "GUEST-CHURNING"
exec /bin/vmi-heartbeat
