#!/bin/sh
# Runs as the nested guest's workload (from the guest /init, on ttyS0).
echo "GUEST-MARKER hello from $(uname -r)"
ps
