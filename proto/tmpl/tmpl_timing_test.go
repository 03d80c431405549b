package tmpl

import "testing"

var sink []byte

func benchRender(b *testing.B, src string) {
	p, err := Compile(src, users, Body)
	if err != nil {
		b.Fatal(err)
	}
	s := NewState(1, 2, usersTables(b))
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Seq++
		buf = p.Append(buf[:0], s)
	}
	b.SetBytes(int64(len(buf)))
	sink = buf
}

// BenchmarkRenderStatic is a body with no variables: one copy.
func BenchmarkRenderStatic(b *testing.B) {
	benchRender(b, `{"product":1234,"quantity":2,"user":"u-000001"}`)
}

// BenchmarkRenderThree is the flash-sale body: three variables.
func BenchmarkRenderThree(b *testing.B) {
	benchRender(b, `{"product":{{randInt 1 5000}},"quantity":{{randInt 1 5}},"user":"{{users.user_id}}"}`)
}

func BenchmarkRenderUUID(b *testing.B)       { benchRender(b, `{{uuid}}`) }
func BenchmarkRenderRandString(b *testing.B) { benchRender(b, `{{randString 16}}`) }
