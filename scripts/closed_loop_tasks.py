"""Write the closed_loop task set: skills/closed_loop/tasks/{train,val,test}/items.json.

Each task is a description (what to compute, never how to print it), a reference solution
(Python that assigns `result`) and a task type whose house rule says how results are printed.
The expected output is what the solution prints under the house rule; the script checks that
the naive program and the decoy rule's program print something else, so a skill must state
the rule to get the task right. Run it from the repository root after editing TASKS:

    .venv/bin/python scripts/closed_loop_tasks.py
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from skillopt.adapters.environments.closed_loop import HOUSE_RULES, program_for

ROOT = Path(__file__).resolve().parent.parent

# (task type, id, description, solution). Per type: the first 6 go to train, the next 3 to
# val (the selection split), the last 3 to test.
TASKS: list[tuple[str, str, str, str]] = [
    # arithmetic: a number
    (
        "arithmetic",
        "mean-3-4-6",
        "Compute the mean of the numbers 3, 4 and 6 and print it.",
        "result = sum([3, 4, 6]) / 3",
    ),
    (
        "arithmetic",
        "rectangle-area",
        "A rectangle is 7.5 m long and 3.2 m wide. Print its area in square metres.",
        "result = 7.5 * 3.2",
    ),
    (
        "arithmetic",
        "compound-interest",
        "Print the balance after 3 years of 1000 invested at 5% interest compounded yearly.",
        "result = 1000 * 1.05 ** 3",
    ),
    (
        "arithmetic",
        "hypotenuse",
        "Print the length of the hypotenuse of a right triangle whose legs are 5 and 7.",
        "import math\nresult = math.hypot(5, 7)",
    ),
    (
        "arithmetic",
        "celsius-to-f",
        "Convert 37.8 degrees Celsius to Fahrenheit and print the result.",
        "result = 37.8 * 9 / 5 + 32",
    ),
    (
        "arithmetic",
        "harmonic-10",
        "Print the sum of 1/k for k from 1 to 10.",
        "result = sum(1 / k for k in range(1, 11))",
    ),
    (
        "arithmetic",
        "sqrt-two-times-ten",
        "Print ten times the square root of 2.",
        "import math\nresult = 10 * math.sqrt(2)",
    ),
    (
        "arithmetic",
        "average-speed",
        "A train covers 150 km in 2.4 hours. Print its average speed in km/h.",
        "result = 150 / 2.4",
    ),
    (
        "arithmetic",
        "bmi",
        "Print the body mass index of a person weighing 70 kg who is 1.75 m tall (weight divided by height squared).",
        "result = 70 / 1.75 ** 2",
    ),
    (
        "arithmetic",
        "circle-area",
        "Print the area of a circle of radius 3.",
        "import math\nresult = math.pi * 3 ** 2",
    ),
    (
        "arithmetic",
        "price-with-tax",
        "Three items cost 4.99 each. Print the total price including 8% sales tax.",
        "result = 3 * 4.99 * 1.08",
    ),
    (
        "arithmetic",
        "median-even",
        "Print the median of the numbers 2, 9, 4 and 7.",
        "values = sorted([2, 9, 4, 7])\nresult = (values[1] + values[2]) / 2",
    ),
    # string: a text
    (
        "string",
        "reverse-word",
        "Reverse the word 'skillopt' and print the reversed text.",
        "result = 'skillopt'[::-1]",
    ),
    (
        "string",
        "title-words",
        "Capitalise the first letter of every word in 'the quick brown fox' and print the text.",
        "result = ' '.join(w.capitalize() for w in 'the quick brown fox'.split())",
    ),
    (
        "string",
        "drop-vowels",
        "Remove every vowel from 'programming language' and print what is left.",
        "result = ''.join(c for c in 'programming language' if c not in 'aeiou')",
    ),
    (
        "string",
        "longest-word",
        "Print the longest word of 'a ledger keeps every event safely' (the first one if there is a tie).",
        "result = max('a ledger keeps every event safely'.split(), key=len)",
    ),
    (
        "string",
        "caesar-3",
        "Shift every letter of 'hello' three places forward in the alphabet (a Caesar cipher) and print the text.",
        "result = ''.join(chr((ord(c) - 97 + 3) % 26 + 97) for c in 'hello')",
    ),
    (
        "string",
        "snake-spaces",
        "Replace the spaces in 'snake case please' with underscores and print the text.",
        "result = 'snake case please'.replace(' ', '_')",
    ),
    (
        "string",
        "initials",
        "Print the initials of 'grace brewster murray hopper' joined into one word.",
        "result = ''.join(w[0] for w in 'grace brewster murray hopper'.split())",
    ),
    (
        "string",
        "run-length",
        "Run-length encode 'aaabccdddd' as each letter followed by its count, and print the text.",
        "import itertools\nresult = ''.join(f'{k}{len(list(g))}' for k, g in itertools.groupby('aaabccdddd'))",
    ),
    (
        "string",
        "first-unique",
        "Print the first character of 'swiss' that occurs only once.",
        "s = 'swiss'\nresult = next(c for c in s if s.count(c) == 1)",
    ),
    (
        "string",
        "sorted-letters",
        "Sort the letters of 'level' alphabetically and print them as one word.",
        "result = ''.join(sorted('level'))",
    ),
    (
        "string",
        "camel-to-snake",
        "Convert the camelCase name 'parseHttpResponse' to snake_case and print it.",
        "import re\nresult = re.sub(r'(?<!^)(?=[A-Z])', '_', 'parseHttpResponse').lower()",
    ),
    (
        "string",
        "three-letter-prefixes",
        "Join the first three letters of each word of 'open source software' into one word and print it.",
        "result = ''.join(w[:3] for w in 'open source software'.split())",
    ),
    # data_structures: a list
    (
        "data_structures",
        "dedupe-order",
        "Remove duplicates from [3, 1, 3, 2, 1], keeping the first occurrence of each, and print the list.",
        "result = list(dict.fromkeys([3, 1, 3, 2, 1]))",
    ),
    (
        "data_structures",
        "sort-fruit",
        "Sort the list ['pear', 'fig', 'apple'] alphabetically and print it.",
        "result = sorted(['pear', 'fig', 'apple'])",
    ),
    (
        "data_structures",
        "intersection",
        "Print the sorted list of the numbers that are in both [1, 2, 3, 4] and [3, 4, 5].",
        "result = sorted(set([1, 2, 3, 4]) & set([3, 4, 5]))",
    ),
    (
        "data_structures",
        "keys-by-value",
        "Print the keys of {'b': 2, 'a': 1, 'c': 3} ordered by their values, largest first.",
        "d = {'b': 2, 'a': 1, 'c': 3}\nresult = sorted(d, key=d.get, reverse=True)",
    ),
    (
        "data_structures",
        "flatten",
        "Flatten the nested list [[1, 2], [3], [4, 5]] into one list and print it.",
        "result = [x for part in [[1, 2], [3], [4, 5]] for x in part]",
    ),
    (
        "data_structures",
        "rotate-left",
        "Rotate the list [1, 2, 3, 4, 5] left by two places and print it.",
        "xs = [1, 2, 3, 4, 5]\nresult = xs[2:] + xs[:2]",
    ),
    (
        "data_structures",
        "stack-ops",
        "Start with an empty stack, push 1, 2 and 3, pop once, then push 4. Print the stack from bottom to top.",
        "stack = []\nfor x in (1, 2, 3):\n    stack.append(x)\nstack.pop()\nstack.append(4)\nresult = stack",
    ),
    (
        "data_structures",
        "queue-ops",
        "Start with an empty queue, enqueue 'a', 'b' and 'c', dequeue once, then enqueue 'd'. Print the queue from front to back.",
        "from collections import deque\nq = deque()\nfor x in 'abc':\n    q.append(x)\nq.popleft()\nq.append('d')\nresult = list(q)",
    ),
    (
        "data_structures",
        "word-lengths",
        "Print the list of the lengths of the words in ['hi', 'hey', 'yo', 'hello'].",
        "result = [len(w) for w in ['hi', 'hey', 'yo', 'hello']]",
    ),
    (
        "data_structures",
        "top-three",
        "Print the three largest numbers of [5, 1, 9, 3, 7, 2], largest first.",
        "result = sorted([5, 1, 9, 3, 7, 2], reverse=True)[:3]",
    ),
    (
        "data_structures",
        "zip-pairs",
        "Pair the names ['ada', 'alan'] with the ages [36, 41] as 'name:age' texts and print the list.",
        "result = [f'{n}:{a}' for n, a in zip(['ada', 'alan'], [36, 41])]",
    ),
    (
        "data_structures",
        "differences",
        "Print the list of differences between consecutive numbers of [1, 4, 9, 16].",
        "xs = [1, 4, 9, 16]\nresult = [b - a for a, b in zip(xs, xs[1:])]",
    ),
    # parsing: a mapping
    (
        "parsing",
        "query-string",
        "Parse the query string 'page=2&sort=name&dir=asc' into its parameters and print them.",
        "result = dict(pair.split('=') for pair in 'page=2&sort=name&dir=asc'.split('&'))",
    ),
    (
        "parsing",
        "word-counts",
        "Count how often each word occurs in 'to be or not to be' and print the counts.",
        "from collections import Counter\nresult = dict(Counter('to be or not to be'.split()))",
    ),
    (
        "parsing",
        "record-fields",
        "Parse the record 'name: Ada; born: 1815; field: mathematics' into its fields and print them.",
        "result = dict(part.split(': ') for part in 'name: Ada; born: 1815; field: mathematics'.split('; '))",
    ),
    (
        "parsing",
        "csv-row",
        "Parse the CSV text 'id,name,score' (header) and '7,ada,91' (one row) into a mapping from column to value and print it.",
        "header, row = 'id,name,score', '7,ada,91'\nresult = dict(zip(header.split(','), row.split(',')))",
    ),
    (
        "parsing",
        "config-lines",
        "Parse the configuration lines 'host = localhost' and 'port = 8080' into settings and print them.",
        "lines = ['host = localhost', 'port = 8080']\nresult = dict(line.split(' = ') for line in lines)",
    ),
    (
        "parsing",
        "letter-counts",
        "Count each letter of 'banana' and print the counts.",
        "from collections import Counter\nresult = dict(Counter('banana'))",
    ),
    (
        "parsing",
        "date-parts",
        "Parse the date '2024-03-05' into year, month and day numbers and print them by name.",
        "y, m, d = (int(p) for p in '2024-03-05'.split('-'))\nresult = {'year': y, 'month': m, 'day': d}",
    ),
    (
        "parsing",
        "semver",
        "Parse the version '2.11.4' into major, minor and patch numbers and print them by name.",
        "major, minor, patch = (int(p) for p in '2.11.4'.split('.'))\nresult = {'major': major, 'minor': minor, 'patch': patch}",
    ),
    (
        "parsing",
        "url-parts",
        "Parse the URL 'https://example.org:8443/docs' into scheme, host, port and path and print them by name.",
        "from urllib.parse import urlsplit\nu = urlsplit('https://example.org:8443/docs')\nresult = {'scheme': u.scheme, 'host': u.hostname, 'port': u.port, 'path': u.path}",
    ),
    (
        "parsing",
        "log-line",
        "Parse the log line '2024-05-01 12:00:03 ERROR disk full' into date, time, level and message and print them by name.",
        "date, time, level, message = '2024-05-01 12:00:03 ERROR disk full'.split(' ', 3)\nresult = {'date': date, 'time': time, 'level': level, 'message': message}",
    ),
    (
        "parsing",
        "email-parts",
        "Split the address 'ada.lovelace@example.com' into user and domain and print them by name.",
        "user, domain = 'ada.lovelace@example.com'.split('@')\nresult = {'user': user, 'domain': domain}",
    ),
    (
        "parsing",
        "extension-counts",
        "Count the file extensions of ['a.py', 'b.py', 'c.md', 'd.txt', 'e.md'] and print the counts.",
        "from collections import Counter\nresult = dict(Counter(name.rsplit('.', 1)[1] for name in ['a.py', 'b.py', 'c.md', 'd.txt', 'e.md']))",
    ),
    # algorithms: a yes/no answer
    (
        "algorithms",
        "is-prime-97",
        "Print whether 97 is a prime number.",
        "n = 97\nresult = n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))",
    ),
    (
        "algorithms",
        "palindrome",
        "Print whether 'racecar' is a palindrome.",
        "result = 'racecar' == 'racecar'[::-1]",
    ),
    (
        "algorithms",
        "balanced-brackets",
        "Print whether the brackets in '(a[b]{c})' are balanced.",
        "pairs, stack, result = {')': '(', ']': '[', '}': '{'}, [], True\nfor ch in '(a[b]{c})':\n    if ch in '([{':\n        stack.append(ch)\n    elif ch in pairs:\n        if not stack or stack.pop() != pairs[ch]:\n            result = False\nresult = result and not stack",
    ),
    (
        "algorithms",
        "is-sorted",
        "Print whether the list [1, 3, 5, 4] is sorted in ascending order.",
        "xs = [1, 3, 5, 4]\nresult = all(a <= b for a, b in zip(xs, xs[1:]))",
    ),
    (
        "algorithms",
        "anagrams",
        "Print whether 'listen' and 'silent' are anagrams of each other.",
        "result = sorted('listen') == sorted('silent')",
    ),
    (
        "algorithms",
        "has-duplicates",
        "Print whether the list [4, 1, 7, 1] contains a duplicate.",
        "xs = [4, 1, 7, 1]\nresult = len(set(xs)) != len(xs)",
    ),
    (
        "algorithms",
        "power-of-two",
        "Print whether 96 is a power of two.",
        "n = 96\nresult = n > 0 and n & (n - 1) == 0",
    ),
    (
        "algorithms",
        "binary-search",
        "Use binary search to find out whether 23 is in the sorted list [2, 5, 8, 12, 16, 23, 38], and print whether it is.",
        "xs, target, lo, hi, result = [2, 5, 8, 12, 16, 23, 38], 23, 0, 6, False\nwhile lo <= hi:\n    mid = (lo + hi) // 2\n    if xs[mid] == target:\n        result = True\n        break\n    if xs[mid] < target:\n        lo = mid + 1\n    else:\n        hi = mid - 1",
    ),
    (
        "algorithms",
        "leap-2100",
        "Print whether the year 2100 is a leap year in the Gregorian calendar.",
        "y = 2100\nresult = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)",
    ),
    (
        "algorithms",
        "subset-sum",
        "Print whether some subset of [3, 34, 4, 12, 5, 2] adds up to exactly 9.",
        "reachable = {0}\nfor x in [3, 34, 4, 12, 5, 2]:\n    reachable |= {r + x for r in reachable}\nresult = 9 in reachable",
    ),
    (
        "algorithms",
        "armstrong-153",
        "Print whether 153 equals the sum of the cubes of its digits.",
        "result = 153 == sum(int(d) ** 3 for d in '153')",
    ),
    (
        "algorithms",
        "reachable",
        "In the directed graph with edges 1->2, 2->3 and 4->1, print whether node 4 can be reached from node 1.",
        "edges = {1: [2], 2: [3], 4: [1]}\nseen, todo = {1}, [1]\nwhile todo:\n    for nxt in edges.get(todo.pop(), []):\n        if nxt not in seen:\n            seen.add(nxt)\n            todo.append(nxt)\nresult = 4 in seen",
    ),
    # formatting: a percentage (0..100)
    (
        "formatting",
        "even-share",
        "Print the share of even numbers among 1, 2, 3, 4, 5, 6, 7 as a percentage.",
        "xs = range(1, 8)\nresult = 100 * sum(1 for x in xs if x % 2 == 0) / len(xs)",
    ),
    (
        "formatting",
        "vowel-share",
        "Print the share of vowels among the letters of 'encyclopedia' as a percentage.",
        "w = 'encyclopedia'\nresult = 100 * sum(c in 'aeiou' for c in w) / len(w)",
    ),
    (
        "formatting",
        "test-score",
        "A student scored 37 points out of 45. Print the score as a percentage.",
        "result = 100 * 37 / 45",
    ),
    (
        "formatting",
        "growth",
        "Sales grew from 120 to 150. Print the growth as a percentage.",
        "result = 100 * (150 - 120) / 120",
    ),
    (
        "formatting",
        "long-words",
        "Print the share of words longer than four letters in 'every rollout is scored by the environment' as a percentage.",
        "words = 'every rollout is scored by the environment'.split()\nresult = 100 * sum(len(w) > 4 for w in words) / len(words)",
    ),
    (
        "formatting",
        "discount",
        "A price dropped from 80 to 68. Print the discount as a percentage of the old price.",
        "result = 100 * (80 - 68) / 80",
    ),
    (
        "formatting",
        "rainy-days",
        "Of the daily rainfalls [0, 2.5, 0, 1.2, 0, 0, 0, 3.1], print the share of days with rain as a percentage.",
        "days = [0, 2.5, 0, 1.2, 0, 0, 0, 3.1]\nresult = 100 * sum(d > 0 for d in days) / len(days)",
    ),
    (
        "formatting",
        "completion",
        "18 of 24 tasks are done. Print the completion rate as a percentage.",
        "result = 100 * 18 / 24",
    ),
    (
        "formatting",
        "uppercase-share",
        "Print the share of upper-case letters among the letters of 'Hello World From Python' as a percentage.",
        "letters = [c for c in 'Hello World From Python' if c.isalpha()]\nresult = 100 * sum(c.isupper() for c in letters) / len(letters)",
    ),
    (
        "formatting",
        "error-rate",
        "7 of 160 requests failed. Print the error rate as a percentage.",
        "result = 100 * 7 / 160",
    ),
    (
        "formatting",
        "year-elapsed",
        "By the end of March, 91 of the 366 days of 2024 had passed. Print the part of the year elapsed as a percentage.",
        "result = 100 * 91 / 366",
    ),
    (
        "formatting",
        "battery",
        "A battery reads 3.7 V and is full at 4.2 V. Print its voltage as a percentage of full.",
        "result = 100 * 3.7 / 4.2",
    ),
]


def printed(program: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(program, "<task>", "exec"), {"__name__": "__main__"})  # our own code
    return out.getvalue().strip()


def main() -> None:
    splits: dict[str, list[dict[str, str]]] = {"train": [], "val": [], "test": []}
    per_type: dict[str, int] = {}
    for task_type, slug, description, solution in TASKS:
        rule = HOUSE_RULES[task_type]
        expected = printed(program_for(solution, rule.rule.printer))
        for other in (rule.naive, rule.decoy.printer):
            if printed(program_for(solution, other)) == expected:
                raise SystemExit(f"{slug}: {other!r} prints the expected output too")
        n = per_type.get(task_type, 0)
        per_type[task_type] = n + 1
        split = "train" if n < 6 else "val" if n < 9 else "test"
        splits[split].append(
            {
                "id": f"{task_type}-{slug}",
                "task_type": task_type,
                "description": description,
                "expected_output": expected,
                "solution": solution,
            }
        )
    out = ROOT / "skills" / "closed_loop" / "tasks"
    for split, rows in splits.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        text = json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
        (out / split / "items.json").write_text(text, "utf-8")
    manifest = {
        "source": "written for skillopt (scripts/closed_loop_tasks.py)",
        "split_mode": "per task type: 6 train, 3 val (selection), 3 test",
        "counts": {split: len(rows) for split, rows in splits.items()},
        "task_types": sorted(per_type),
        "item_fields": ["id", "task_type", "description", "expected_output", "solution"],
        "notes": "solution is reference Python that assigns `result`; only the offline "
        "model reads it. expected_output is what it prints under the task type's house rule.",
    }
    (out / "split_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    print({split: len(rows) for split, rows in splits.items()})


if __name__ == "__main__":
    main()
