// Command floor is the benchmark's floor: the least a scanner of every
// process's holds on mounts must do, written as plainly as Go allows, to
// say how close mounttop's scan comes to the cost of the reads themselves
// (issue 12). It reads /proc/locks once, then, with two goroutines taking
// pids in turn, for every process: statx of each /proc/PID/fd/N magic
// link (the unique mount ID and inode, answered from the inode cache:
// AT_STATX_DONT_SYNC), of cwd and root, and a read of /proc/PID/maps. It
// keeps nothing and prints nothing (the count of what it saw with -v).
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

func main() {
	verbose := flag.Bool("v", false, "print how many processes, links and maps bytes were read")
	proc := flag.String("proc", "/proc", "the proc filesystem to read")
	flag.Parse()
	// /proc/locks: which files have locks (a scanner then reads fdinfo
	// of those only).
	if b, err := os.ReadFile(*proc + "/locks"); err == nil {
		lockBytes = len(b)
	}
	d, err := os.Open(*proc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	var pids []int
	for _, n := range names {
		if p, err := strconv.Atoi(n); err == nil {
			pids = append(pids, p)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dents := make([]byte, 32<<10)
			file := make([]byte, 64<<10)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(pids) {
					return
				}
				file = scan(*proc, pids[i], dents, file)
			}
		}()
	}
	wg.Wait()
	if *verbose {
		fmt.Printf("%d processes, %d links, %d maps bytes, %d locks bytes\n", len(pids), links.Load(), seen.Load(), lockBytes)
	}
}

var (
	links, seen atomic.Int64
	lockBytes   int
)

const statxFlags = unix.AT_STATX_DONT_SYNC | unix.AT_NO_AUTOMOUNT
const statxMask = unix.STATX_INO | unix.STATX_MNT_ID_UNIQUE

func scan(proc string, pid int, dents, file []byte) []byte {
	dir, err := unix.Open(proc+"/"+strconv.Itoa(pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return file
	}
	defer unix.Close(dir)
	var stx unix.Statx_t
	for _, l := range []string{"cwd", "root"} {
		if unix.Statx(dir, l, statxFlags, statxMask, &stx) == nil {
			links.Add(1)
		}
	}
	if fds, err := unix.Openat(dir, "fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		for {
			n, err := unix.Getdents(fds, dents)
			if err != nil || n <= 0 {
				break
			}
			for buf := dents[:n]; len(buf) > 0; {
				reclen := int(buf[16]) | int(buf[17])<<8
				name := buf[19:reclen]
				for i, c := range name {
					if c == 0 {
						name = name[:i]
						break
					}
				}
				if len(name) > 0 && name[0] != '.' && unix.Statx(fds, string(name), statxFlags, statxMask, &stx) == nil {
					links.Add(1)
				}
				buf = buf[reclen:]
			}
		}
		unix.Close(fds)
	}
	if m, err := unix.Openat(dir, "maps", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		n := 0
		for {
			if n == len(file) {
				file = append(file, make([]byte, len(file))...)
			}
			k, err := unix.Read(m, file[n:])
			if err != nil || k <= 0 {
				break
			}
			n += k
		}
		seen.Add(int64(n))
		unix.Close(m)
	}
	return file
}
