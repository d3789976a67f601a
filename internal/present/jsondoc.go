package present

import "reflect"

// EventJSONType is the type of an event's JSON form (EventJSON): `mounttop
// umount --json` and the journal. The man page lists its fields from it,
// so the two cannot drift.
func EventJSONType() reflect.Type { return reflect.TypeFor[runEventJSON]() }
