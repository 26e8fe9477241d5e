"""A scripted engine for loop tests: the k-th generation call of a trajectory returns turn k.
The turn index is read off the prefix: the number of observations appended after the prompt
(the first prefix seen of a trajectory is its prompt). It inherits the Engine defaults: no
generator (unseeded requests), unknown context, rounds of ``generate`` in the agent loop."""

from tirl.engine.base import Completion, Engine, FinishReason


class ScriptedEngine(Engine):
    def __init__(self, tokenizer, turns, marker="<result>", char_level=False):
        self.tokenizer = tokenizer
        self.tokens_generated = 0
        self.turns = turns
        self.marker = marker
        self.char_level = char_level
        self.requests = []
        self.prompts = []

    def _turn(self, prefix):
        roots = [p for p in self.prompts if prefix[: len(p)] == p]
        if not roots:
            self.prompts.append(list(prefix))
            return 0
        root = max(roots, key=len)
        return self.tokenizer.decode(prefix[len(root) :]).count(self.marker)

    def _ids(self, text):
        if self.char_level:  # a deliberately non-canonical tokenisation: one token per character
            return [self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(ch))[0] for ch in text]
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, requests):
        out = []
        for r in requests:
            self.requests.append(r)
            k = self._turn(r.prefix_ids)
            text = self.turns[min(k, len(self.turns) - 1)]
            ids = self._ids(text)
            finish, stop = FinishReason.LENGTH, None
            for s in r.sampling.stop_strings:
                if text.rstrip().endswith(s):
                    finish, stop = FinishReason.STOP_STRING, s
            if ids and ids[-1] == self.tokenizer.eos_token_id:
                finish = FinishReason.EOS
            if len(ids) > r.sampling.max_new_tokens:
                ids, finish, stop = ids[: r.sampling.max_new_tokens], FinishReason.LENGTH, None
            out.append(Completion(ids, [-0.5] * len(ids), [1.0] * len(ids), finish, stop))
            self.tokens_generated += len(ids)
        return out
