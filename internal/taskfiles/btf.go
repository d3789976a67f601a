package taskfiles

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// The kernel's BTF is read here in one streaming pass of 64 KiB reads,
// for the few names the program needs (struct members' offsets, the
// iterator's attach point), rather than with cilium/ebpf's btf package,
// which maps all 6 MB of it and decodes every type reachable from
// task_struct: that cost 10 MB of peak memory, against a scan whose whole
// budget is 24 MiB (issue 12). The format is the kernel's BTF
// documentation (Documentation/bpf/btf.rst): a header, the type section,
// the string section.

const vmlinuxBTF = "/sys/kernel/btf/vmlinux"

// BTF kinds (btf.rst 2.2) whose extra data follow a type record.
const (
	kindInt       = 1
	kindArray     = 3
	kindStruct    = 4
	kindUnion     = 5
	kindEnum      = 6
	kindFunc      = 12
	kindFuncProto = 13
	kindVar       = 14
	kindDatasec   = 15
	kindDeclTag   = 17
	kindEnum64    = 19
)

// btfMember is one member of a struct or union: its name's offset in the
// string section, its type's id, its offset in bits.
type btfMember struct {
	name uint32
	typ  uint32
	bits uint32
}

// btfAggregate is a struct or union the program reads.
type btfAggregate struct {
	size    uint32
	members []btfMember
}

// btfFacts is what Load needs of the kernel's BTF.
type btfFacts struct {
	names   map[string]uint32       // wanted name -> string offset
	structs map[uint32]btfAggregate // by name offset: the first struct of that name with members
	byID    map[uint32]btfAggregate // anonymous structs and unions asked for by id
	funcID  uint32                  // the iterator's attach point, FUNC bpf_iter_task_file
}

// readBTF reads the facts about the struct names in structs (and the
// anonymous members they hold) and the FUNC named fn.
func readBTF(path string, structs, members []string, fn string) (*btfFacts, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hdr [24]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	le := binary.LittleEndian
	if le.Uint16(hdr[0:]) != 0xeB9F {
		return nil, fmt.Errorf("%s: not little-endian BTF", path)
	}
	hdrLen := int64(le.Uint32(hdr[4:]))
	typeOff, typeLen := hdrLen+int64(le.Uint32(hdr[8:])), int64(le.Uint32(hdr[12:]))
	strOff, strLen := hdrLen+int64(le.Uint32(hdr[16:])), int64(le.Uint32(hdr[20:]))

	facts := &btfFacts{names: map[string]uint32{}, structs: map[uint32]btfAggregate{}, byID: map[uint32]btfAggregate{}}
	want := map[string]bool{fn: true}
	for _, n := range append(append([]string{}, structs...), members...) {
		want[n] = true
	}
	// The strings: each name's offset.
	sr := bufio.NewReaderSize(io.NewSectionReader(f, strOff, strLen), 64<<10)
	for off := uint32(0); ; {
		// ReadSlice: the name in the reader's buffer, no string made
		// for the 100,000 names not wanted.
		s, err := sr.ReadSlice(0)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: strings: %w", path, err)
		}
		if name := s[:len(s)-1]; want[string(name)] {
			if _, dup := facts.names[string(name)]; !dup {
				facts.names[string(name)] = off
			}
		}
		off += uint32(len(s))
	}
	wantStruct := map[uint32]bool{}
	for _, n := range structs {
		if off, ok := facts.names[n]; ok {
			wantStruct[off] = true
		}
	}
	fnOff, fnKnown := facts.names[fn]
	// The types, twice: the second pass reads the anonymous members the
	// first found (their ids may come before or after their struct).
	anon := map[uint32]bool{}
	for pass := 0; pass < 2; pass++ {
		tr := bufio.NewReaderSize(io.NewSectionReader(f, typeOff, typeLen), 64<<10)
		var rec [12]byte
		for id := uint32(1); ; id++ {
			if _, err := io.ReadFull(tr, rec[:]); err == io.EOF {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: type %d: %w", path, id, err)
			}
			nameOff, info, size := le.Uint32(rec[0:]), le.Uint32(rec[4:]), le.Uint32(rec[8:])
			kind, vlen, kflag := info>>24&0x1f, int(info&0xffff), info>>31 == 1
			if kind == kindStruct || kind == kindUnion {
				keep := pass == 0 && nameOff != 0 && wantStruct[nameOff] && vlen > 0 && facts.structs[nameOff].members == nil
				keepAnon := pass == 1 && anon[id]
				if !keep && !keepAnon {
					if _, err := tr.Discard(12 * vlen); err != nil {
						return nil, fmt.Errorf("%s: type %d: %w", path, id, err)
					}
					continue
				}
				agg := btfAggregate{size: size, members: make([]btfMember, 0, vlen)}
				for i := 0; i < vlen; i++ {
					var m [12]byte
					if _, err := io.ReadFull(tr, m[:]); err != nil {
						return nil, fmt.Errorf("%s: type %d: %w", path, id, err)
					}
					bits := le.Uint32(m[8:])
					if kflag {
						bits &= 0xffffff // the bitfield size is in the high byte
					}
					agg.members = append(agg.members, btfMember{name: le.Uint32(m[0:]), typ: le.Uint32(m[4:]), bits: bits})
				}
				switch {
				case keep:
					facts.structs[nameOff] = agg
					for _, m := range agg.members {
						if m.name == 0 {
							anon[m.typ] = true
						}
					}
				case keepAnon:
					// One level deep: every member the program reads is
					// in its struct or one anonymous union in it.
					facts.byID[id] = agg
				}
				continue
			}
			if pass == 0 && kind == kindFunc && fnKnown && nameOff == fnOff && facts.funcID == 0 {
				facts.funcID = id
			}
			if _, err := tr.Discard(extraSize(kind, vlen)); err != nil {
				return nil, fmt.Errorf("%s: type %d: %w", path, id, err)
			}
		}
		if len(anon) == 0 {
			break
		}
	}
	if facts.funcID == 0 {
		return nil, fmt.Errorf("%s: no %s: the kernel has no task_file iterator", path, fn)
	}
	return facts, nil
}

// extraSize is the size of the data after a type record of this kind
// (btf.rst 2.2), other than a struct's or union's members.
func extraSize(kind uint32, vlen int) int {
	switch kind {
	case kindInt, kindVar, kindDeclTag:
		return 4
	case kindArray:
		return 12
	case kindEnum, kindFuncProto:
		return 8 * vlen
	case kindDatasec, kindEnum64:
		return 12 * vlen
	}
	return 0 // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
}

// offset is the byte offset of member name in struct typ, looking into
// its anonymous structs and unions.
func (b *btfFacts) offset(typ, name string) (int32, error) {
	agg, ok := b.structs[b.names[typ]]
	if _, known := b.names[typ]; !known || !ok {
		return 0, fmt.Errorf("no struct %s", typ)
	}
	nameOff, known := b.names[name]
	if !known {
		return 0, fmt.Errorf("struct %s has no member %s", typ, name)
	}
	if bits, ok := b.find(agg, nameOff); ok {
		if bits%8 != 0 {
			return 0, fmt.Errorf("%s.%s is a bitfield", typ, name)
		}
		return int32(bits / 8), nil
	}
	return 0, fmt.Errorf("struct %s has no member %s", typ, name)
}

func (b *btfFacts) find(agg btfAggregate, name uint32) (uint32, bool) {
	for _, m := range agg.members {
		if m.name == name {
			return m.bits, true
		}
		if m.name == 0 {
			if inner, ok := b.byID[m.typ]; ok {
				if bits, ok := b.find(inner, name); ok {
					return m.bits + bits, true
				}
			}
		}
	}
	return 0, false
}

// size is the size of struct typ.
func (b *btfFacts) size(typ string) (int32, error) {
	agg, ok := b.structs[b.names[typ]]
	if !ok {
		return 0, errors.New("no struct " + typ)
	}
	return int32(agg.size), nil
}
