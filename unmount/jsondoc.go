package unmount

import "reflect"

// EventJSONType is the type of an Event's JSON form (Event.MarshalJSON):
// `mounttop umount --json` and the journal. The man page lists its fields
// from it, so the two cannot drift.
func EventJSONType() reflect.Type { return reflect.TypeFor[eventJSON]() }
