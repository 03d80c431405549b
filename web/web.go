// Package web holds the browser assets the live dashboard serves and the
// HTML report inlines: uPlot (vendored from npm, with its license), the
// chart script both share (charts.js), the two pages and their scripts.
// They are embedded in the binary: nothing is fetched at run time, and
// users never run npm.
//
// uPlot 1.6.32 came from `npm pack uplot@1.6.32` (dist/uPlot.iife.min.js,
// dist/uPlot.min.css, LICENSE); uplot/VERSION records the tarball's
// SHA-256. To update it, replace those three files and VERSION.
package web

import (
	"embed"
	"io/fs"
)

//go:embed uplot/uPlot.iife.min.js uplot/uPlot.min.css uplot/LICENSE uplot/VERSION
//go:embed charts.js style.css dashboard.html dashboard.js report.html report.js
var files embed.FS

// FS is the assets as a file system (paths as in this folder).
var FS fs.FS = files

// Asset returns an embedded file; a missing one is a build defect.
func Asset(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("BUG: web: no asset " + name)
	}
	return b
}
