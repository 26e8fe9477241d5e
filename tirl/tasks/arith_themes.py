"""The stories of the arith word problems: units and sentence templates (data, no logic).

A theme follows one running quantity through three units: the base unit, the finer unit a
multiplication converts it to (boxes -> cans) and the coarser unit a division packs it into
(cans -> cartons). Each +/- sentence exists per stage so it reads naturally in that unit.
``tirl.tasks.arith`` draws the numbers and picks the sentences.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    """What the running quantity counts at one stage of a story."""

    noun: str  # plural, as printed after a number: "boxes", "kilograms of gravel"
    var: str  # Python variable for the running value in the solution
    money: bool = False  # printed as "$1,234"

    def say(self, n: int) -> str:
        return f"${n:,}" if self.money else f"{n:,} {self.noun}"


@dataclass(frozen=True)
class Theme:
    """A story: three units (base, after x, after /) and sentence templates per stage.

    ``add``/``sub`` hold, per stage, pairs of a sentence template -- with ``{when}`` (a moment
    such as "On Monday") and ``{q}`` (an amount with its unit) -- and the name of its operand in
    the solution (suffixed with the moment's slug, so names never repeat); ``mul``/``div``
    templates use ``{m}``/``{d}``."""

    name: str
    units: tuple[Unit, Unit, Unit]
    start: tuple[str, ...]
    moments: tuple[tuple[str, str], ...]
    add: tuple[tuple[tuple[str, str], ...], ...]
    sub: tuple[tuple[tuple[str, str], ...], ...]
    mul: tuple[str, ...]
    mul_var: str
    div: tuple[str, ...]
    div_var: str
    question: tuple[str, str, str]


_DAYS = (("On Monday", "monday"), ("On Tuesday", "tuesday"), ("On Wednesday", "wednesday"),
         ("On Thursday", "thursday"), ("On Friday", "friday"))  # fmt: skip
_MONTHS = (("In January", "january"), ("In February", "february"), ("In March", "march"),
           ("In April", "april"), ("In May", "may"))  # fmt: skip
_WEEKS = tuple((f"In the {w} week", f"week{i + 1}") for i, w in enumerate(("first", "second", "third", "fourth", "fifth")))
_PARK_MONTHS = tuple((f"In the {w} month", f"month{i + 1}") for i, w in enumerate(("first", "second", "third", "fourth", "fifth")))
_HARVEST_DAYS = tuple((f"On the {w} day", f"day{i + 1}") for i, w in enumerate(("first", "second", "third", "fourth", "fifth")))

THEMES: tuple[Theme, ...] = (
    Theme(
        name="warehouse",
        units=(Unit("boxes", "boxes"), Unit("cans", "cans"), Unit("cartons", "cartons")),
        start=("A warehouse starts the week with {q} of canned soup.",
               "At the start of the week, a warehouse holds {q} of canned soup."),
        moments=_DAYS,
        add=((("{when}, a truck delivers {q}.", "delivered"), ("{when}, another {q} arrive from the factory.", "arrived")),
             (("{when}, a shop returns {q}, which go back into stock.", "returned"), ("{when}, a supplier sends {q}.", "supplied")),
             (("{when}, {q} arrive from a second warehouse.", "transferred"), ("{when}, the warehouse receives another {q}.", "received"))),
        sub=((("{when}, {q} are shipped to stores.", "shipped"), ("{when}, the warehouse sends {q} to a supermarket chain.", "sent")),
             (("{when}, {q} are found dented and thrown away.", "dented"), ("{when}, {q} are sold to a restaurant.", "sold")),
             (("{when}, {q} are loaded onto a truck and leave.", "loaded"), ("{when}, {q} are sent to a food bank.", "donated"))),
        mul=("Every box holds {m} cans.", "Each box contains {m} cans of soup."),
        mul_var="cans_per_box",
        div=("All the cans are then repacked into cartons of {d} cans each.",
             "Next, the cans are repacked, {d} to a carton."),
        div_var="cans_per_carton",
        question=("How many boxes does the warehouse hold at the end?",
                  "How many cans does the warehouse hold at the end?",
                  "How many cartons does the warehouse hold at the end?"),
    ),
    Theme(
        name="money",
        units=(Unit("dollars", "dollars", money=True), Unit("pesos", "pesos"), Unit("pesos", "pesos_per_branch")),
        start=("A travel agency has {q} in its account.", "A travel agency starts the year with {q} in the bank."),
        moments=_MONTHS,
        add=((("{when}, it earns {q} from bookings.", "bookings"), ("{when}, customers pay it {q} for tours.", "tours")),
             (("{when}, it earns another {q} from local tours.", "local_tours"), ("{when}, a partner hotel pays it {q}.", "hotel_payment")),
             (("{when}, each branch also receives a bonus of {q}.", "bonus"), ("{when}, each branch earns {q} from souvenir sales.", "souvenirs"))),
        sub=((("{when}, it pays {q} in rent.", "rent"), ("{when}, it spends {q} on advertising.", "advertising")),
             (("{when}, it pays {q} for a bus rental.", "bus_rental"), ("{when}, it spends {q} on hotel deposits.", "deposits")),
             (("{when}, each branch spends {q} on supplies.", "supplies"), ("{when}, each branch pays {q} for repairs.", "repairs"))),
        mul=("It then exchanges all of its dollars for pesos at a rate of {m} pesos per dollar.",),
        mul_var="pesos_per_dollar",
        div=("The pesos are then shared equally among its {d} branch offices.",),
        div_var="branches",
        question=("How many dollars does the agency have at the end?",
                  "How many pesos does the agency have at the end?",
                  "How many pesos does each branch have at the end?"),
    ),
    Theme(
        name="trail",
        units=(Unit("metres of trail", "trail_metres"), Unit("kilograms of gravel", "gravel_kg"),
               Unit("bags of gravel", "bags")),
        start=("A national park has {q} open to hikers.", "A hiking club looks after {q} in a national park."),
        moments=_PARK_MONTHS,
        add=((("{when}, volunteers build another {q}.", "built"), ("{when}, the park reopens {q} that had been closed.", "reopened")),
             (("{when}, the builders ask for another {q} as a reserve.", "reserve_kg"), ("{when}, another {q} are needed for a car park.", "car_park_kg")),
             (("{when}, the club orders another {q} for repairs.", "repair_bags"), ("{when}, a neighbouring park asks the club to order {q} for it.", "neighbour_bags"))),
        sub=((("{when}, a landslide closes {q}.", "closed"), ("{when}, {q} are handed over to the town.", "handed_over")),
             (("{when}, {q} left over from last year are found, so they need not be bought.", "leftover_kg"), ("{when}, a quarry donates {q}.", "donated_kg")),
             (("{when}, {q} are found in a storage shed, so they need not be ordered.", "found_bags"), ("{when}, a sponsor donates {q}.", "donated_bags"))),
        mul=("Every metre of trail needs {m} kilograms of gravel.",),
        mul_var="gravel_kg_per_metre",
        div=("Gravel is sold in bags of {d} kilograms.",),
        div_var="kg_per_bag",
        question=("How many metres of trail are open at the end?",
                  "How many kilograms of gravel are needed?",
                  "How many bags of gravel must be ordered?"),
    ),
    Theme(
        name="tickets",
        units=(Unit("tickets", "tickets"), Unit("dollars", "revenue", money=True),
               Unit("dollars", "per_charity", money=True)),
        start=("A charity concert sells {q} in its first week.", "Before the box office opens, {q} for a charity concert are sold online."),
        moments=_DAYS,
        add=((("{when}, another {q} are sold.", "sold"), ("{when}, the box office sells {q}.", "box_office")),
             (("{when}, a sponsor adds {q} to the ticket money.", "sponsor"), ("{when}, {q} in donations is added to the ticket money.", "donations")),
             (("{when}, each charity also receives a grant of {q}.", "grant"), ("{when}, a local business gives each charity {q}.", "gift"))),
        sub=((("{when}, {q} are refunded.", "refunded"), ("{when}, {q} are cancelled.", "cancelled")),
             (("{when}, the sound crew is paid {q} from the ticket money.", "sound_crew"), ("{when}, the hall rent of {q} is paid from the ticket money.", "hall_rent")),
             (("{when}, each charity pays {q} in bank fees.", "bank_fees"), ("{when}, each charity spends {q} on transport.", "transport"))),
        mul=("Every ticket costs ${m}.",),
        mul_var="ticket_price",
        div=("All the money is then shared equally among {d} charities.",),
        div_var="charities",
        question=("How many tickets are sold in the end?",
                  "How many dollars does the concert raise in the end?",
                  "How many dollars does each charity receive in the end?"),
    ),
    Theme(
        name="orchard",
        units=(Unit("crates of apples", "crates"), Unit("apples", "apples"), Unit("bags of apples", "bags")),
        start=("An orchard has {q} in its cold store.", "An orchard's cold store holds {q}."),
        moments=_HARVEST_DAYS,
        add=((("{when}, the pickers fill another {q}.", "picked"), ("{when}, {q} are brought in from the fields.", "brought_in")),
             (("{when}, a neighbouring farm sends {q}.", "from_farm"), ("{when}, {q} are gathered from the ground and kept.", "gathered")),
             (("{when}, another {q} are packed from a late harvest.", "late_harvest"), ("{when}, a second packing line adds {q}.", "second_line"))),
        sub=((("{when}, {q} are sold at the market.", "sold"), ("{when}, {q} are sent to a juice factory.", "to_juice")),
             (("{when}, {q} are found bruised and thrown away.", "bruised"), ("{when}, {q} are given to a school.", "to_school")),
             (("{when}, {q} are delivered to a supermarket.", "delivered"), ("{when}, {q} are sold to a cafe.", "to_cafe"))),
        mul=("Each crate holds {m} apples.",),
        mul_var="apples_per_crate",
        div=("All the apples are then packed into bags of {d}.",),
        div_var="apples_per_bag",
        question=("How many crates of apples are in the cold store at the end?",
                  "How many apples are there at the end?",
                  "How many bags of apples are there at the end?"),
    ),
    Theme(
        name="printing",
        units=(Unit("books", "books"), Unit("pages", "pages"), Unit("sheets of paper", "sheets")),
        start=("A print shop has an order for {q}.", "A publisher asks a print shop for {q}."),
        moments=_WEEKS,
        add=((("{when}, a school adds {q} to the order.", "school_order"), ("{when}, the publisher orders another {q}.", "reordered")),
             (("{when}, {q} of colour inserts are added to the job.", "inserts"), ("{when}, the publisher adds {q} of advertisements.", "adverts")),
             (("{when}, the shop adds {q} for test prints.", "test_prints"), ("{when}, {q} are added to cover spoilage.", "spoilage"))),
        sub=((("{when}, {q} are cancelled.", "cancelled"), ("{when}, a bookshop cancels {q}.", "bookshop_cancelled")),
             (("{when}, the editor cuts {q} from the job.", "cut"), ("{when}, {q} are dropped from the job.", "dropped")),
             (("{when}, {q} are found already in stock.", "in_stock"), ("{when}, {q} left over from another job are used.", "leftover"))),
        mul=("Each book has {m} pages.",),
        mul_var="pages_per_book",
        div=("The pages are printed {d} to a sheet of paper.",),
        div_var="pages_per_sheet",
        question=("How many books are in the order at the end?",
                  "How many pages must be printed?",
                  "How many sheets of paper must the shop buy?"),
    ),
)  # fmt: skip

THEME_NAMES: tuple[str, ...] = tuple(t.name for t in THEMES)
