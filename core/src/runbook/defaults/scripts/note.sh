#!/bin/bash
# note.sh: the incident's first timeline note (the guide's "Document incident"), from
# INCIDENT and LEVEL in the environment.
set -euo pipefail
echo "=== EMERGENCY RESPONSE ACTIVATED ==="
echo "Timestamp: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "Incident: ${INCIDENT:-none}"
echo "Incident level: ${LEVEL:-UNKNOWN}"
echo "Emergency contacts are paged by Spotter's escalation matrix; status probes follow."
