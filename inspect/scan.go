package inspect

import (
	"context"
	"errors"
)

func (in *Inspector) scan(ctx context.Context, withProcs bool) (*Snapshot, error) {
	return nil, errors.New("inspect: scan not built yet")
}
