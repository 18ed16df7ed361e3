package synth

// Word lists for names and addresses. They are common words, combined at
// random, so a generated person is realistic in shape and no real person.

var femaleNames = []string{
	"Abigail", "Ada", "Alice", "Amara", "Anna", "Beatrice", "Carmen", "Chloe",
	"Clara", "Daisy", "Elena", "Eliza", "Emma", "Esther", "Fatima", "Freya",
	"Grace", "Hannah", "Ines", "Iris", "Jade", "Julia", "Keiko", "Laila",
	"Lena", "Lucia", "Maya", "Mei", "Nadia", "Nora", "Olivia", "Priya",
	"Rosa", "Ruth", "Sara", "Sofia", "Tara", "Vera", "Yara", "Zoe",
}

var maleNames = []string{
	"Aaron", "Ahmed", "Andre", "Arjun", "Ben", "Caleb", "Carlos", "Daniel",
	"David", "Elias", "Ethan", "Felix", "Gabriel", "Hassan", "Henry", "Hugo",
	"Isaac", "Jamal", "Jonas", "Kenji", "Leo", "Liam", "Lucas", "Marco",
	"Mateo", "Miles", "Noah", "Omar", "Oscar", "Paul", "Rafael", "Ravi",
	"Samuel", "Theo", "Tomas", "Victor", "Wei", "Xavier", "Yusuf", "Zane",
}

var familyNames = []string{
	"Abbott", "Alvarez", "Bauer", "Bennett", "Brooks", "Castillo", "Chen",
	"Cohen", "Delgado", "Dunn", "Ellis", "Fischer", "Fleming", "Garcia",
	"Grant", "Hale", "Haddad", "Hughes", "Ibrahim", "Jensen", "Kaur", "Keller",
	"Kim", "Kowalski", "Lambert", "Larsen", "Lopez", "Mason", "Mendez",
	"Moreau", "Murphy", "Nakamura", "Novak", "Okafor", "Olsen", "Ortiz",
	"Park", "Patel", "Quinn", "Ramos", "Reyes", "Rossi", "Sato", "Schmidt",
	"Shah", "Silva", "Sullivan", "Tanaka", "Torres", "Turner", "Vance",
	"Vargas", "Walsh", "Weber", "Wong", "Young", "Zhang", "Zimmerman",
}

var streetNames = []string{
	"Alder", "Aspen", "Birch", "Briar", "Cedar", "Chestnut", "Clover",
	"Cypress", "Elm", "Fern", "Hawthorn", "Hazel", "Heather", "Juniper",
	"Laurel", "Linden", "Magnolia", "Maple", "Meadow", "Mill", "Oak",
	"Orchard", "Pine", "Poplar", "Quarry", "Ridge", "Spruce", "Willow",
}

var streetKinds = []string{"Street", "Avenue", "Road", "Lane", "Drive", "Court", "Way", "Place"}

// city is an invented town with its own block of postal codes.
type city struct {
	name   string
	postal int // first three digits of its postal codes
}

// The state is fixed so the hospital has one catchment area.
const hospitalState = "MA"

var cities = []city{
	{"Ashbrook", 14}, {"Brightwater", 15}, {"Cedar Falls", 16}, {"Dunmore", 17},
	{"Eastfield", 18}, {"Fairhaven Hills", 19}, {"Glenmoor", 20}, {"Harrowgate", 21},
	{"Kingsbridge", 22}, {"Larkspur", 23}, {"Millbrook", 24}, {"Northvale", 25},
	{"Oakridge", 26}, {"Pinecrest", 27}, {"Riverbend", 28}, {"Stonehaven", 29},
}
