package domain

// countryNames is the ISO 3166-1 alpha-2 table (English short names).
var countryNames = map[string]string{
	"CH": "Switzerland",
	"FR": "France",
	"ES": "Spain",
	"DE": "Germany",
	"IT": "Italy",
	"LI": "Liechtenstein",
	"AT": "Austria",
	"US": "United States",
}
