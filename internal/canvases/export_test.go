package canvases

import "flag"

// flagLookup lets the external test package share the -update flag.
var FlagLookup = flag.Lookup
