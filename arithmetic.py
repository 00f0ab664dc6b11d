"""Arithmetic captchas (`captcha_kind=arithmetic`): drawing an expression such as `3+8=?` and answering it.

The model reads the expression as drawn, like any text; its answer is computed here, by a small evaluator
that accepts only this grammar (never Python's eval):

    captcha   := operand operator operand ending
    operand   := 0, or digits without a leading zero, within arithmetic_operands
    operator  := one of arithmetic_operators: + (add), - (subtract), x × * (multiply), ÷ / (divide)
    ending    := one of arithmetic_endings, such as "=?" or "="

Rules: answers are whole numbers. A subtraction may answer below zero (`3-8=` is -5; the generator draws
such captchas only with arithmetic_negative). A division answers only when it divides exactly: with a
remainder or by zero there is no answer, and the reason says why (the generator draws exact ones only).

    python arithmetic.py "12÷4=?" "3-8="                  # 3, then -5
    python arithmetic.py --arithmetic_operands=0,99 "57x3=?"
"""
import operator
import re

from command_line import parse_args, run_main
from parameters import ARITHMETIC_OPERATORS, make_parameters


def _divide(dividend, divisor):
    if divisor == 0:
        raise ArithmeticError("division by zero")
    if dividend % divisor:
        raise ArithmeticError(f"{dividend} does not divide by {divisor} exactly")
    return dividend // divisor


# Each operator glyph a style may draw (parameters.ARITHMETIC_OPERATORS), and what it computes: look-alikes
# (x, ×, *) compute the same.
OPERATIONS = dict(zip(ARITHMETIC_OPERATORS, (operator.add, operator.sub, operator.mul, operator.mul, operator.mul,
                                             _divide, _divide)))


class Grammar:
    """The expressions one arithmetic style draws and reads: its operand range, operators and endings."""

    def __init__(self, operands, operators, endings):
        self.low, self.high = operands
        self.operators, self.endings = operators, tuple(endings)
        ops = "".join(re.escape(op) for op in operators)
        ends = "|".join(re.escape(end) for end in sorted(self.endings, key=len, reverse=True))
        self._pattern = re.compile(rf"(0|[1-9][0-9]*)([{ops}])(0|[1-9][0-9]*)({ends})")

    @classmethod
    def of(cls, params):
        return cls(params.arithmetic_operands, params.arithmetic_operators, params.arithmetic_endings)

    def draw(self, rng, negative=False):
        """A random expression as drawn (text), from `rng`: a division divides exactly, and a subtraction
        puts the larger operand first unless `negative`."""
        op = rng.choice(self.operators)
        if OPERATIONS[op] is _divide:
            divisor = rng.randint(max(1, self.low), self.high)
            quotient = rng.randint(-(-self.low // divisor), self.high // divisor)  # the dividend stays in range
            first, second = divisor * quotient, divisor
        else:
            first, second = rng.randint(self.low, self.high), rng.randint(self.low, self.high)
            if OPERATIONS[op] is operator.sub and not negative and first < second:
                first, second = second, first
        return f"{first}{op}{second}{rng.choice(self.endings)}"

    def answer(self, text):
        """(answer, None) for an expression of this grammar, else (None, the reason there is none)."""
        match = self._pattern.fullmatch(text)
        if match is None:
            return None, f"{text!r} is not an expression of this style (operand, one of {self.operators}, operand, ending)"
        first, op, second = int(match.group(1)), match.group(2), int(match.group(3))
        outside = [n for n in (first, second) if not self.low <= n <= self.high]
        if outside:
            return None, f"operand {outside[0]} is outside this style's {self.low}-{self.high}"
        try:
            return OPERATIONS[op](first, second), None
        except ArithmeticError as error:
            return None, str(error)

    def accuracy(self, reads, labels):
        """The share of captchas whose read answers as its label does (a label without an answer: missed)."""
        truths = [self.answer(label)[0] for label in labels]
        right = sum(truth is not None and self.answer(read)[0] == truth for read, truth in zip(reads, truths))
        return right / max(1, len(labels))


def main(argv=None):
    """Answer the expressions on the command line with the grammar of the arithmetic settings given."""
    params, texts = parse_args(argv, doc=__doc__, script=__file__, positional=True)
    grammar = Grammar.of(make_parameters({"captcha_kind": "arithmetic"}, base=params))
    answered = 0
    for text in texts:
        answer, reason = grammar.answer(text)
        answered += answer is not None
        print(f"{text}: {answer}" if answer is not None else f"{text}: no answer ({reason})")
    print(f"{answered} of {len(texts)} answered")
    raise SystemExit(0 if answered == len(texts) else 1)


if __name__ == "__main__":
    run_main(main)
