// Package release holds mounttop's release script (build.sh) and its test:
// the script cross-compiles static binaries for linux/amd64 and
// linux/arm64 and packs each with the man page and the shell completions
// into a tarball and a .deb, with a SHA256SUMS file. There is no Go code
// to import here; the package exists so that `go test ./...` runs the
// script.
package release
