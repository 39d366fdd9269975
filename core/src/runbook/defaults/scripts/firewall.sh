#!/bin/bash
# firewall.sh: the guide's firewall: ssh, 80 and 443 open; MySQL (3306) and Redis (6379)
# closed to the outside. With WORKOUT_FIREWALL=none it only says what it would do.
set -euo pipefail
rules=("allow ssh" "allow 80" "allow 443" "deny 3306" "deny 6379")
if [ "${WORKOUT_FIREWALL:-}" = "none" ]; then
    echo "firewall control is disabled (WORKOUT_FIREWALL=none): would enable ufw and ${rules[*]}"
    exit 0
fi
for rule in "${rules[@]}"; do
    read -r -a words <<<"$rule"
    sudo -n ufw "${words[@]}"
done
sudo -n ufw --force enable
sudo -n ufw status verbose
