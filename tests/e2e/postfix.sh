# Shared by tests/e2e/run.sh and tests/e2e/scenarios.sh (sourced, not run): a free loopback
# port, and a private Postfix instance (config, queue and data under a temp dir, loopback only,
# SASL through Dovecot, everything relayed to the sink, smtpscope as policy server).

# A free TCP port on 127.0.0.1.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# write_postfix_config PF T SMTP SINK POLICY MYNETWORKS PERMIT_NETWORKS [MX_DOMAIN]
#   PF: the config directory; T: the temp dir (queue in $T/spool, data in $T/data, log in
#   $T/maillog); SMTP: smtpd's port; SINK: the relayhost's port; POLICY: smtpscope's policy
#   port; MYNETWORKS: Postfix mynetworks; PERMIT_NETWORKS: "yes" to let mynetworks relay without
#   SASL (permit_mynetworks), anything else for SASL only; MX_DOMAIN (optional): the server is
#   also the MX of this domain — a virtual mailbox domain whose mailboxes are listed in
#   $T/vmailbox ("address maildir/" per line, texthash: no postmap), delivered by Postfix's
#   `virtual` agent under $T/vmail; mail for any other address of it is refused at RCPT with
#   Postfix's own "User unknown in virtual mailbox table" (smtpd_reject_unlisted_recipient).
#   Anyone may send to it without SASL; relaying elsewhere stays as without it. Internet hosts
#   are played by XCLIENT from 127.99.0.1 (smtpd_authorized_xclient_hosts): the client's
#   address becomes a non-loopback one in the log and the policy requests, as behind a proxy
#   (smtpscope takes a loopback client outside own_networks for this host itself).
write_postfix_config() {
    local pf=$1 t=$2 smtp=$3 sink=$4 policy=$5 mynetworks=$6 permit="" mx=${8:-} last=reject vmail=""
    [ "$7" = yes ] && permit="permit_mynetworks, "
    mkdir -p "$pf" "$t/data"
    chown postfix "$t/data"
    if [ -n "$mx" ]; then
        # Mail to our domain passes (relay restrictions already refused everything else).
        last=reject_unauth_destination
        mkdir -p "$t/vmail"
        chown 65534:65534 "$t/vmail"
        vmail="virtual_mailbox_domains = $mx
virtual_mailbox_maps = texthash:$t/vmailbox
virtual_mailbox_base = $t/vmail
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_authorized_xclient_hosts = 127.99.0.1"
    fi
    cat > "$pf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $t/spool
data_directory = $t/data
maillog_file = $t/maillog
maillog_file_prefixes = $t
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.e2e.test
mydomain = e2e.test
myorigin = e2e.test
mydestination =
mynetworks = $mynetworks
relayhost = [127.0.0.1]:$sink
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_security_options = noanonymous
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtpd_relay_restrictions = ${permit}permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:$policy, ${permit}permit_sasl_authenticated, $last
smtpd_policy_service_default_action = DUNNO
smtpd_policy_service_timeout = 10s
queue_run_delay = 5s
minimal_backoff_time = 5s
$vmail
EOF
    cat > "$pf/master.cf" <<EOF
127.0.0.1:$smtp inet n - n - - smtpd
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
local     unix - n n - - local
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
}
