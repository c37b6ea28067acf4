#!/usr/bin/env bash
# End-to-end test of what powerd-host does with OpenStack Nova's domains (docs/openstack.md),
# against a real libvirtd and qemu (TCG):
#
#   e2e-nova.sh --host BIN --guest BIN --raplsim BIN [--source DIR] [--keep]
#
# Two domains shaped as Nova's libvirt driver writes them (name instance-XXXXXXXX, the
# instance's UUID, Nova's <metadata> element, SMBIOS sysinfo):
# - instance-0000002a, a default instance: no virtio-serial controller. Checked: its info series
#   carries Nova's labels; its channel is no_controller with a reason naming the image property
#   hw_qemu_guest_agent=yes, in the metric and in `powerd-host status`; the warning is logged once
#   per start, not per tick; `virsh metadata --live` changes the labels within a tick.
# - instance-0000002b, from an image with hw_qemu_guest_agent=yes: Nova's guest agent channel, so
#   libvirt gave it a controller. Checked: powerd-host hot-plugs the energy channel, the busybox
#   guest (tests/e2e/channel-init.sh) reads records, and the host meters the domain.
# The whole scrape passes promtool check metrics.
#
# Shared set-up in tests/e2e/lib.sh; every wait is bounded; exit 1 if any assertion failed, 77
# where it cannot run.
set -uo pipefail
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
e2e_init "$@"

NOVA_NS=http://openstack.org/xmlns/libvirt/nova/1.1
DOM_A=instance-0000002a
DOM_B=instance-0000002b
UUID_A=6f0c3a8e-2b1d-4f5e-9a7c-0d1e2f3a4b5c
UUID_B=0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d
PROJECT_ID=f241e906010e4917ae8153f4fb8aa021
USER_ID=3472c2a6de914fb5b61842bc781ef670
IMAGE_ID=fe55c69a-8b2e-4bbc-811a-9ad2023a0426
export E2E_LOGS="$DOM_A.serial $DOM_B.serial"

host_yaml() {
	cat <<-EOF
	libvirt_uri: qemu:///system
	interval: 1s
	share_dir: $SHARE
	domains: { include: ["instance-*"] }
	powercap_root: $W/powercap
	metrics_listen: 127.0.0.1:${HOST_PORT}
	status_socket: $W/status.sock
	log_level: debug
	EOF
}
e2e_timings() { echo "labels updated ${META_S:-?}s after virsh metadata; channel connected ${CONNECT_S:-?}s after virsh start; "; }

# Nova's element (nova/virt/libvirt/config.py, LibvirtConfigGuestMetaNova*): prefix "nova:" with
# its namespace declared, as in a domain's XML; prefix "" for virsh metadata --set, which puts
# the element into the namespace it is given.
nova_meta() { # prefix name project flavor
	local p=$1 xmlns=''
	[ -n "$p" ] && xmlns=" xmlns:nova=\"$NOVA_NS\""
	cat <<-EOF
	<${p}instance$xmlns>
	  <${p}package version="27.1.0"/>
	  <${p}name>$2</${p}name>
	  <${p}creationTime>2026-12-06 08:12:31</${p}creationTime>
	  <${p}flavor name="$4" id="2">
	    <${p}memory>256</${p}memory><${p}disk>1</${p}disk><${p}swap>0</${p}swap>
	    <${p}ephemeral>0</${p}ephemeral><${p}vcpus>1</${p}vcpus><${p}extraSpecs/>
	  </${p}flavor>
	  <${p}image uuid="$IMAGE_ID"><${p}containerFormat>bare</${p}containerFormat><${p}properties/></${p}image>
	  <${p}owner>
	    <${p}user uuid="$USER_ID">alice</${p}user>
	    <${p}project uuid="$PROJECT_ID">$3</${p}project>
	  </${p}owner>
	  <${p}root type="image" uuid="$IMAGE_ID"/>
	</${p}instance>
	EOF
}

nova_xml() { # name uuid agent(0|1) instance_name
	local agent=''
	[ "$3" = 1 ] && agent="<channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/org.qemu.guest_agent.0.$1.sock'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
	cat <<-EOF
	<domain type='qemu'>
	  <name>$1</name>
	  <uuid>$2</uuid>
	  <metadata>
	$(nova_meta nova: "$4" demo m1.tiny)
	  </metadata>
	  <memory unit='MiB'>256</memory>
	  <vcpu>1</vcpu>
	  <sysinfo type='smbios'><system>
	    <entry name='manufacturer'>OpenStack Foundation</entry>
	    <entry name='product'>OpenStack Nova</entry>
	    <entry name='uuid'>$2</entry>
	    <entry name='family'>Virtual Machine</entry>
	  </system></sysinfo>
	  <os>
	    <type arch='x86_64' machine='pc'>hvm</type>
	    <kernel>$KERNEL</kernel>
	    <initrd>$W/initrd-chan.gz</initrd>
	    <cmdline>console=ttyS0 quiet loglevel=1 panic=-1 powerd_e2e.burn=2 powerd_e2e.idle=2</cmdline>
	    <smbios mode='sysinfo'/>
	  </os>
	  <features><acpi/></features>
	  <on_poweroff>destroy</on_poweroff>
	  <devices>
	    <emulator>/usr/bin/qemu-system-x86_64</emulator>
	    $agent
	    <serial type='file'><source path='$W/$1.serial' append='on'/><target port='0'/></serial>
	    <video><model type='none'/></video>
	    <memballoon model='none'/>
	  </devices>
	</domain>
	EOF
}

info_series() { # domain instance_name project
	printf 'powerd_domain_info{domain="%s",uuid="%s",instance_name="%s",project_id="%s",project_name="%s",user_id="%s",user_name="alice",flavor="m1.tiny",image_id="%s"} 1' \
		"$1" "$([ "$1" = $DOM_A ] && echo $UUID_A || echo $UUID_B)" "$2" "$PROJECT_ID" "$3" "$USER_ID" "$IMAGE_ID"
}
# (the scrape read whole first: grep -q leaving early would fail curl on a closed pipe, and pipefail
# the check)
has_line() { local m; m=$(host_metrics) && grep -qxF "$1" <<<"$m"; }
NOVA_REASON="no virtio-serial controller: a Nova instance; its image needs hw_qemu_guest_agent=yes"
no_controller_nova() { has_line "powerd_domain_transport{domain=\"$1\",transport=\"channel\",state=\"no_controller\",reason=\"$NOVA_REASON\"} 1"; }
channel_connected() { has_line "powerd_domain_channel_connected{domain=\"$1\"} 1"; }
unserved_logged() { grep -c "domain $DOM_A: no virtio-serial controller" "$W/powerd-host.log"; }
logged_twice() { [ "$(unserved_logged)" = 2 ]; }
status_() { "$W/bin/powerd-host" -c "$W/host.yaml" status 2>&1; }
ticks() { status_ | sed -n 's/.*; tick \([0-9]*\),.*/\1/p'; }
ticks_beyond() { [ "$(ticks)" -ge "$1" ]; }
guest_reads() { tr -d '\r' <"$W/$DOM_B.serial" | grep -Eac '^(REC|TREE) ' | awk '{ exit !($1 >= 3) }'; }
dom_energy() { host_metrics | metric "powerd_domain_energy_joules_total\\{domain=\"$1\",zone=\"package-0\"\\}"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

step_initrd() {
	local r=$W/initramfs-chan
	rm -rf "$r"
	cp -a "$W/initramfs" "$r"
	cp "$HERE/channel-init.sh" "$r/init" && chmod 755 "$r/init"
	(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initrd-chan.gz"
	check "channel guest initramfs built" test -s "$W/initrd-chan.gz"
}

start_dom() { # name uuid agent instance_name
	nova_xml "$@" >"$W/$1.xml"
	: >"$W/$1.serial"
	virsh_ define "$W/$1.xml" >/dev/null || { not_ok "$1: virsh define"; return 1; }
	virsh_ start "$1" >"$W/$1.start.log" 2>&1 || { not_ok "$1: virsh start ($(cat "$W/$1.start.log"))"; return 1; }
}

# A default Nova instance: no controller.
step_default_instance() {
	log "$DOM_A: a default Nova instance (no virtio-serial controller)"
	start_dom $DOM_A $UUID_A 0 web-1 || return 1
	check "$DOM_A: powerd_domain_info carries Nova's labels" \
		wait_for 20 has_line "$(info_series $DOM_A web-1 demo)"
	check "$DOM_A: powerd_domain_transport{transport=channel,state=no_controller,reason=...hw_qemu_guest_agent=yes}" \
		wait_for 20 no_controller_nova $DOM_A
	local st
	st=$(status_)
	check "$DOM_A: powerd-host status names it with the image property" \
		grep -q "^$DOM_A .*no_controller.*hw_qemu_guest_agent=yes" <<<"$st"
	check "$DOM_A: the log's warning names the image property" \
		grep -q "domain $DOM_A: no virtio-serial controller.*Nova instance: set hw_qemu_guest_agent=yes on its image" "$W/powerd-host.log"
	local t0
	t0=$(ticks)
	wait_for 10 ticks_beyond $((${t0:-0} + 3))
	check "$DOM_A: the warning once, not per tick ($(unserved_logged) line(s) over $(($(ticks) - ${t0:-0})) more ticks)" \
		test "$(unserved_logged)" = 1
	# Nova updates the element (a rename, a resize): the labels follow within a tick.
	local t
	t=$(date +%s.%N)
	if virsh_ metadata $DOM_A --live --uri $NOVA_NS --key nova --set "$(nova_meta '' web-renamed 'demo "2"' m1.tiny)"; then
		if wait_for 5 has_line "$(info_series $DOM_A web-renamed 'demo \"2\"')"; then
			META_S=$(since "$t")
			ok "$DOM_A: virsh metadata --live: labels updated ${META_S}s later (quotes escaped)"
		else
			not_ok "$DOM_A: virsh metadata --live: labels updated within 5s ($(host_metrics | grep "^powerd_domain_info{domain=\"$DOM_A\""))"
		fi
	else
		not_ok "$DOM_A: virsh metadata --live --set"
	fi
	# A second start: the warning again, once.
	virsh_ destroy $DOM_A >/dev/null 2>&1
	virsh_ start $DOM_A >/dev/null 2>&1 || not_ok "$DOM_A: second virsh start"
	check "$DOM_A: the warning once more for the second start" \
		wait_for 20 logged_twice
	check "$DOM_A: the persistent metadata's labels again after the restart (--live was live only)" \
		wait_for 20 has_line "$(info_series $DOM_A web-1 demo)"
}

# An instance from an image with hw_qemu_guest_agent=yes: the agent's channel, so a controller.
step_agent_instance() {
	log "$DOM_B: a Nova instance with the guest agent's channel"
	local t
	t=$(date +%s.%N)
	start_dom $DOM_B $UUID_B 1 db-1 || return 1
	if wait_for 60 channel_connected $DOM_B; then
		CONNECT_S=$(since "$t")
		ok "$DOM_B: energy channel hot-plugged and connected ${CONNECT_S}s after virsh start"
	else
		not_ok "$DOM_B: energy channel connected within 60s"
		return 1
	fi
	check "$DOM_B: the live XML has both channels" \
		sh -c "virsh -q -c qemu:///system dumpxml $DOM_B | grep -q org.powerd.energy.0 && virsh -q -c qemu:///system dumpxml $DOM_B | grep -q org.qemu.guest_agent.0"
	check "$DOM_B: powerd_domain_info carries Nova's labels" has_line "$(info_series $DOM_B db-1 demo)"
	check "$DOM_B: the guest reads energy records from the channel" wait_for 90 guest_reads
	check "$DOM_B: the host meters it ($(dom_energy $DOM_B) J)" fcmp "$(dom_energy $DOM_B)" '>' 0
}

step_promtool() {
	if ! command -v promtool >/dev/null; then
		log "promtool not installed: exposition check skipped"
		return 0
	fi
	host_metrics >"$W/scrape.prom"
	check "the scrape passes promtool check metrics" sh -c "promtool check metrics <$W/scrape.prom >$W/promtool.out 2>&1"
}

main() {
	log "work dir $W, source $SOURCE"
	HOST_PORT=$(free_port)
	step_libvirt_sandbox || return 1
	step_start_libvirtd || return 1
	step_start_raplsim
	step_start_host || return 1
	step_build_guest || return 1
	step_initrd || return 1
	step_default_instance
	step_agent_instance
	step_promtool
}

main
e2e_finish
