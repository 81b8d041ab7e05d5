"""The built-in word lists the generators draw from: names, attribute values, the things math problems count.

No value holds a comma or a period: TriviaQA's lm-eval task stops generating at "\\n", "." and ",", so an
answer such as "St. Louis" could never be produced whole. Values are unique within each list.
"""

FIRST_NAMES = (
    "Aaron Abigail Adrian Alice Amelia Andrew Anna Arthur Audrey Benjamin Bianca Caleb Camila Carter Caroline "
    "Charles Chloe Clara Daniel Daphne David Delia Dominic Eleanor Elias Elena Eliza Emil Emma Ethan Felix "
    "Fiona Florence Gabriel Grace Hannah Harold Hazel Henry Ian Irene Isaac Ivy Jacob Jasper Julia Julian "
    "Karen Keith Laura Leah Leon Lila Lucas Lydia Magnus Marcus Margaret Maria Martin Maya Miles Miriam Nadia "
    "Nathan Nina Noah Nora Oliver Olivia Oscar Paula Peter Philip Quentin Rachel Raymond Rebecca Robert Rosa "
    "Ruth Samuel Sara Silas Sofia Stella Thomas Tobias Uma Valerie Victor Vivian Walter Wendy Xavier Yara "
    "Yusuf Zoe"
).split()

LAST_NAMES = (
    "Abbott Ackerman Alvarez Anderson Baker Barnes Bennett Brooks Caldwell Carter Castillo Chambers Collins "
    "Cooper Dalton Davies Dawson Delgado Donovan Duncan Ellison Emerson Espinoza Farrell Fischer Fleming "
    "Fletcher Foster Garrison Gibson Goodwin Graham Hale Hamilton Hartley Hawkins Holloway Hughes Ingram "
    "Jennings Keller Kendall Kimura Lambert Larsen Lawson Lindqvist Lowell Maddox Marsh Mendoza Mercer "
    "Monroe Nakamura Navarro Norris Novak Oakley Olsen Ortega Palmer Parker Pearson Quinn Ramsey Reyes "
    "Ridley Rowe Salazar Sandoval Sawyer Schmidt Shaw Sinclair Sorensen Stanton Sutton Tanaka Thornton "
    "Torres Tucker Underwood Vance Vaughn Wagner Walsh Warren Webb Whitaker Winslow Wolfe Yates Young Zimmerman"
).split()

CITIES = (
    "Amsterdam",
    "Athens",
    "Atlanta",
    "Auckland",
    "Austin",
    "Barcelona",
    "Berlin",
    "Bogota",
    "Boston",
    "Brisbane",
    "Budapest",
    "Buenos Aires",
    "Cairo",
    "Calgary",
    "Cape Town",
    "Chicago",
    "Copenhagen",
    "Dallas",
    "Denver",
    "Dublin",
    "Edinburgh",
    "Florence",
    "Geneva",
    "Hamburg",
    "Helsinki",
    "Houston",
    "Istanbul",
    "Kyoto",
    "Lima",
    "Lisbon",
    "London",
    "Lyon",
    "Madrid",
    "Manchester",
    "Marseille",
    "Melbourne",
    "Miami",
    "Milan",
    "Montreal",
    "Munich",
    "Nairobi",
    "Naples",
    "Oslo",
    "Osaka",
    "Paris",
    "Philadelphia",
    "Portland",
    "Prague",
    "Rome",
    "San Diego",
    "Santiago",
    "Seattle",
    "Seoul",
    "Stockholm",
    "Sydney",
    "Toronto",
    "Valencia",
    "Vancouver",
    "Vienna",
    "Warsaw",
    "Zurich",
)

UNIVERSITIES = (
    "Brown University",
    "Carnegie Mellon University",
    "Columbia University",
    "Cornell University",
    "Duke University",
    "ETH Zurich",
    "Harvard University",
    "Imperial College London",
    "Johns Hopkins University",
    "Kyoto University",
    "McGill University",
    "Northwestern University",
    "Princeton University",
    "Rice University",
    "Stanford University",
    "the University of Amsterdam",
    "the University of Cambridge",
    "the University of Chicago",
    "the University of Copenhagen",
    "the University of Edinburgh",
    "the University of Helsinki",
    "the University of Melbourne",
    "the University of Michigan",
    "the University of Oslo",
    "the University of Oxford",
    "the University of Tokyo",
    "the University of Toronto",
    "the University of Vienna",
    "the University of Washington",
    "Tsinghua University",
    "Uppsala University",
    "Vanderbilt University",
    "Yale University",
)

FIELDS = (
    "aerospace engineering",
    "anthropology",
    "applied mathematics",
    "architecture",
    "art history",
    "astronomy",
    "biochemistry",
    "biology",
    "chemical engineering",
    "chemistry",
    "civil engineering",
    "classics",
    "computer science",
    "economics",
    "electrical engineering",
    "geology",
    "history",
    "journalism",
    "law",
    "linguistics",
    "marine biology",
    "materials science",
    "mathematics",
    "mechanical engineering",
    "medicine",
    "music",
    "neuroscience",
    "nursing",
    "philosophy",
    "physics",
    "political science",
    "psychology",
    "sociology",
    "statistics",
    "urban planning",
)

EMPLOYERS = (
    "Amber Robotics",
    "Apex Analytics",
    "Atlas Shipping",
    "Aurora Energy",
    "Beacon Health",
    "Blue Harbor Bank",
    "Bright Orchard Foods",
    "Cedar Software",
    "Cobalt Mining",
    "Crescent Airlines",
    "Delta Textiles",
    "Ember Games",
    "Evergreen Insurance",
    "Falcon Motors",
    "Granite Construction",
    "Harbor Pharmaceuticals",
    "Horizon Telecom",
    "Iris Optics",
    "Juniper Publishing",
    "Keystone Logistics",
    "Lantern Media",
    "Maple Biotech",
    "Meridian Consulting",
    "Nimbus Cloud",
    "Northwind Chemicals",
    "Oak Street Studios",
    "Orion Aerospace",
    "Pinnacle Steel",
    "Quartz Semiconductors",
    "Redwood Architects",
    "Riverstone Hotels",
    "Sapphire Jewelers",
    "Silverline Rail",
    "Solstice Solar",
    "Summit Outfitters",
    "Tidewater Fisheries",
    "Topaz Cosmetics",
    "Vertex Instruments",
    "Willow Furniture",
    "Zenith Electronics",
)

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# Math problems: what people buy, make and grow (singular, plural).
GOODS = (
    ("notebook", "notebooks"),
    ("pen", "pens"),
    ("apple", "apples"),
    ("candle", "candles"),
    ("ticket", "tickets"),
    ("mug", "mugs"),
    ("sticker", "stickers"),
    ("muffin", "muffins"),
    ("battery", "batteries"),
    ("plate", "plates"),
)
PRODUCTS = ("toys", "bottles", "chairs", "bricks", "shirts", "lamps", "boxes", "bolts")
FRUITS = ("apples", "oranges", "pears", "plums", "lemons", "peaches", "cookies", "marbles")
CROPS = ("tomatoes", "peppers", "cucumbers", "carrots", "potatoes", "onions")
WEARABLES = ("jacket", "backpack", "lamp", "helmet", "sweater", "kettle", "blanket")
VEHICLES = ("truck", "bus", "car", "van", "tractor")
