package unmount

// Note is what one event says, as data: which step happened to which
// mount, holder, device or call, with the figures that go with it. The
// engine writes no sentence and escapes no name: internal/present renders
// every Note (present.NoteText) for the view, `umount`'s text and JSON and
// the journal, and escapes each name there, once.
//
// Each note is a small struct named for what happened (an aborted FUSE
// connection, the holders left after a drain pass, a released loop
// device); its fields carry the raw names and numbers.
type Note interface{ note() }
