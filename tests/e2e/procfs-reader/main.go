// powerd-procfs-reader: reads a sysfs root's powercap zones the way Kepler does, with the
// prometheus/procfs library itself, and keeps a running total of the energy it saw. For the
// image end-to-end test (tests/e2e/e2e-image.sh), which runs it inside the VM on powerd-guest's
// sysfs_out for the whole test.
//
//	powerd-procfs-reader -sysfs /run/powerd/sysfs -interval 1s -state /run/powerd-reader.state
//
// Each interval it lists the zones (sysfs.GetRaplZones: <sysfs>/class/powercap/* flat, each zone
// with name, max_energy_range_uj, energy_uj) and reads each zone's energy with
// GetEnergyMicrojoules. Per zone (by its directory) the first reading is the baseline; after it,
// Kepler's rule: a reading below the previous one is a wrap and adds (max - previous) + current,
// any other adds current - previous. A zone that cannot be read this time is left for the next.
//
// The state file is replaced (write, rename) after every reading:
//
//	samples N
//	zone <dir> <name> <index> <max_uj> <last_uj> <total_uj> <wraps>
//	package_uj <sum of total_uj over the zones named "package">
//	wraps <sum of wraps>
//	errors <listing or reading errors so far>
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/procfs/sysfs"
)

type zoneState struct {
	name  string
	index int
	max   uint64
	last  uint64
	total uint64
	wraps uint64
}

func main() {
	root := flag.String("sysfs", "/run/powerd/sysfs", "the sysfs root to read class/powercap from")
	interval := flag.Duration("interval", time.Second, "how often to read")
	statePath := flag.String("state", "/run/powerd-reader.state", "where to write the totals")
	flag.Parse()

	zones := map[string]*zoneState{}
	var samples, errors uint64
	for {
		if err := readOnce(*root, zones, &errors); err != nil {
			errors++
			log.Printf("reading %s: %v", *root, err)
		} else {
			samples++
		}
		if err := writeState(*statePath, zones, samples, errors); err != nil {
			log.Printf("writing %s: %v", *statePath, err)
		}
		time.Sleep(*interval)
	}
}

func readOnce(root string, zones map[string]*zoneState, errors *uint64) error {
	fs, err := sysfs.NewFS(root)
	if err != nil {
		return err
	}
	list, err := sysfs.GetRaplZones(fs)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return fmt.Errorf("no RAPL zones")
	}
	for _, z := range list {
		uj, err := z.GetEnergyMicrojoules()
		if err != nil {
			*errors++
			continue
		}
		key := filepath.Base(z.Path)
		s, seen := zones[key]
		if !seen {
			zones[key] = &zoneState{name: z.Name, index: z.Index, max: z.MaxMicrojoules, last: uj}
			continue
		}
		s.max = z.MaxMicrojoules
		if uj < s.last {
			// Kepler: any decrease is a wrap of the counter at max_energy_range_uj
			s.total += (s.max - s.last) + uj
			s.wraps++
		} else {
			s.total += uj - s.last
		}
		s.last = uj
	}
	return nil
}

func writeState(path string, zones map[string]*zoneState, samples, errors uint64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "samples %d\n", samples)
	keys := make([]string, 0, len(zones))
	for k := range zones {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pkg, wraps uint64
	for _, k := range keys {
		s := zones[k]
		fmt.Fprintf(&b, "zone %s %s %d %d %d %d %d\n", k, s.name, s.index, s.max, s.last, s.total, s.wraps)
		if s.name == "package" {
			pkg += s.total
		}
		wraps += s.wraps
	}
	fmt.Fprintf(&b, "package_uj %d\nwraps %d\nerrors %d\n", pkg, wraps, errors)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
