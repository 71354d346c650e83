package api

import (
	"bytes"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/klauspost/compress/gzip"
)

// gzipPool reuses gzip writers: their compression state is large to allocate.
type gzipPool struct {
	level int
	pool  sync.Pool
}

func (p *gzipPool) compress(body []byte) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(body)/4 + 64)
	w, _ := p.pool.Get().(*gzip.Writer)
	if w == nil {
		var err error
		if w, err = gzip.NewWriterLevel(&out, p.level); err != nil {
			return nil, err
		}
	} else {
		w.Reset(&out)
	}
	defer p.pool.Put(w)
	if _, err := w.Write(body); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// sendBody sends body as it is, or gzip-compressed when the client accepts gzip and
// the body is large enough to be worth it. body must not change afterwards.
func (s *Server) sendBody(c *fiber.Ctx, body []byte) error {
	c.Vary(fiber.HeaderAcceptEncoding)
	if len(body) < s.cfg.GzipMinBytes || !acceptsGzip(c.Get(fiber.HeaderAcceptEncoding)) {
		return c.Send(body)
	}
	z, err := s.gz.compress(body)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentEncoding, "gzip")
	return c.Send(z)
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip (and does not
// refuse it with q=0).
func acceptsGzip(header string) bool {
	for header != "" {
		var part string
		part, header, _ = strings.Cut(header, ",")
		name, params, _ := strings.Cut(part, ";")
		name = strings.TrimSpace(name)
		if !strings.EqualFold(name, "gzip") && name != "*" {
			continue
		}
		params = strings.ReplaceAll(params, " ", "")
		if q, ok := strings.CutPrefix(params, "q="); ok && strings.Trim(q, "0.") == "" {
			return false
		}
		return true
	}
	return false
}
