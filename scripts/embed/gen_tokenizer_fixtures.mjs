// Writes tests/fixtures/tokenizer/: a small WordPiece vocabulary, four model
// directories that use it (uncased, cased, lowercased with accents kept, cased
// with sentence_bert_config.json's input lowercasing) and
// expected.json, the ids that Hugging Face's JavaScript tokenizer
// (@huggingface/transformers, see package-lock.json for the version) gives
// for each case. The C tokenizer's unit test compares against that file.
//
// Run: cd scripts/embed && npm ci && node gen_tokenizer_fixtures.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoTokenizer, env } from '@huggingface/transformers';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(here, '../../tests/fixtures/tokenizer');

// The vocabulary: special tokens, ASCII and Unicode punctuation, letters with
// their ## forms, and whole words for each script the cases use. Cased and
// uncased spellings both appear, so one vocabulary serves every model.
const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const ascii = [];
for (let c = 33; c < 127; c++) {
  const ch = String.fromCharCode(c);
  if (!/[A-Za-z0-9]/.test(ch)) ascii.push(ch);
}
const letters = [];
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') {
  letters.push(c, '##' + c);
}
const unicodePunct = ['«', '»', '—', '–', '‘', '’', '“', '”', '…', '¡', '¿', '。', '，', '、', '·'];
const words = [
  'the', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', 'hello', 'world', 'Hello',
  'World', 'wait', 'quoted', 'single', 'double', 'and', 'mixed', 'love', 'zero', 'width',
  'line', 'sep', 'un', '##aff', '##able', 'play', '##ing', '##ed', 're', '##play', 'cafe',
  'café', 'Café', 'naive', 'naïve', 'angstrom', 'ångström', 'Ångström', 'resume', 'résumé',
  'istanbul', 'i̇stanbul', 'İstanbul', 'aaaaaaaaaa', '##aaaaaaaaaa', 'tag', 'test',
  '€', '©', '±', '##€', 'ｈｅｌｌｏ', 'ｈ', '##ｅ', '##ｌ', '##ｏ', 'ＨＥＬＬＯ',
  '中', '文', '字', '㐀', '豈', '𠀀', '日', '本', '語', 'の', 'ひらがな',
  'привет', 'Привет', 'мир', 'καλημερα', 'καλημέρα', 'Καλημέρα', 'κοσμε', 'κόσμε',
  'οδος', 'οδοσ', 'ΟΔΟΣ', 'σ', 'ς', 'مرحبا', 'بالعالم', 'नमसत', 'नमस्ते', 'दनिया', 'दुनिया',
  'न', '##म', '##स', '##्', '##त', '##े', '##̇', '##́', 'ᄒ', '##ᅡ', '##ᆫ', '한',
];
const vocab = [...specials, ...ascii, ...letters, ...unicodePunct, ...words];
const duplicates = vocab.filter((t, i) => vocab.indexOf(t) !== i);
if (duplicates.length) throw new Error('duplicate vocabulary entries: ' + duplicates.join(' '));

// Each model directory gets vocab.txt and a tokenizer.json whose
// BertNormalizer matches its tokenizer_config.json, as saved by transformers.
const models = {
  uncased: { lowercase: true, strip_accents: null, vocabTxt: true },
  cased: { lowercase: false, strip_accents: null, vocabTxt: false },
  lower_keep_accents: { lowercase: true, strip_accents: false, vocabTxt: true },
  // sentence_bert_config.json's do_lower_case makes sentence-transformers call
  // str.lower() on the input before a cased tokenizer runs. The reference here
  // calls String.prototype.toLowerCase(), which maps the same way, final
  // sigma included.
  cased_input_lowercase: { lowercase: false, strip_accents: null, vocabTxt: true, inputLowercase: true },
};

function tokenizerJson(m) {
  const id = (t) => vocab.indexOf(t);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((t) => ({
      id: id(t), content: t, single_word: false, lstrip: false, rstrip: false,
      normalized: false, special: true,
    })),
    normalizer: {
      type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true,
      strip_accents: m.strip_accents, lowercase: m.lowercase,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [id('[CLS]')], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [id('[SEP]')], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
      max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
    },
  };
}

function tokenizerConfig(m) {
  const config = {
    tokenizer_class: 'BertTokenizer', do_lower_case: m.lowercase, tokenize_chinese_chars: true,
    unk_token: '[UNK]', sep_token: '[SEP]', pad_token: '[PAD]', cls_token: '[CLS]',
    mask_token: '[MASK]', model_max_length: 512,
  };
  if (m.strip_accents !== null) config.strip_accents = m.strip_accents;
  return config;
}

// The cases. `text` is what the C test encodes. `reference` replaces it for
// the JavaScript tokenizer where that port is known to differ from the Python
// and Rust BertTokenizer, with the reason in `why`.
const a100 = 'a'.repeat(100);
const cases = [
  { name: 'ascii_sentence', text: 'Hello, world! The quick brown fox.' },
  { name: 'accents_composed', text: 'café naïve Ångström résumé' },
  { name: 'accents_decomposed', text: 'cafe\u0301 re\u0301sume\u0301' },
  { name: 'dotted_capital_i', text: 'İstanbul' },
  { name: 'cjk_alone', text: '中文字' },
  { name: 'cjk_mixed_with_latin', text: 'hello中文world 日本語のひらがな' },
  { name: 'cjk_extension_a_and_compat', text: 'x㐀y豈z' },
  {
    name: 'cjk_extension_b', text: 'x𠀀y',
    reference: 'x 𠀀 y',
    why: 'the JavaScript port pads only BMP ideographs because it walks UTF-16 code units',
  },
  { name: 'emoji_unknown', text: 'I love 🍕 and 😀!' },
  { name: 'emoji_inside_word', text: 'play😀ing' },
  { name: 'ascii_punctuation_runs', text: 'wait...!! a--b (test) "quoted"' },
  { name: 'ascii_symbols_split', text: '$5+3=<tag>^_^`x`|y|~z' },
  { name: 'unicode_punctuation', text: '«quoted» — ‘single’ “double”… ¡hola! ¿que?' },
  { name: 'cjk_punctuation', text: '中文。字，中、文' },
  { name: 'non_punctuation_symbols', text: '€5 ©2024 ±3 test€' },
  { name: 'wordpiece_splits', text: 'unaffable playing replayed' },
  { name: 'word_partly_unknown', text: 'playing unaffablé playÿ' },
  { name: 'word_of_100_chars', text: a100 },
  { name: 'word_of_101_chars', text: a100 + 'a' },
  { name: 'word_of_101_with_accents', text: 'á'.repeat(101) + ' ' + 'á'.repeat(100) },
  { name: 'long_word_then_punctuation', text: a100 + '!' + a100 + 'a.' },
  { name: 'cyrillic', text: 'Привет, мир!' },
  { name: 'greek_accents', text: 'Καλημέρα κόσμε' },
  { name: 'greek_final_sigma', text: 'ΟΔΟΣ ΟΔΟΣ. Σ ΟΔΟΣΟ' },
  { name: 'arabic', text: 'مرحبا بالعالم' },
  { name: 'devanagari_combining_marks', text: 'नमस्ते दुनिया' },
  { name: 'hangul_syllable', text: '한' },
  { name: 'fullwidth_latin', text: 'ＨＥＬＬＯ ｈｅｌｌｏ' },
  { name: 'control_characters_dropped', text: 'a\u0000b\u0007c\uFFFDd\u001Be\u007Ff' },
  { name: 'format_characters_dropped', text: 'zero\u200Bwidth\u00ADx\uFEFFy' },
  { name: 'tab_newline_cr_split', text: 'a\tb\nc\rd\r\ne' },
  { name: 'unicode_spaces_split', text: 'x\u00A0y\u3000z\u2003w\u2028line\u2029sep' },
  { name: 'empty_text', text: '' },
  { name: 'whitespace_only', text: ' \t\n\r \u00A0 ' },
  { name: 'controls_only', text: '\u0000\u0007\uFFFD' },
  { name: 'special_tokens_in_text', text: 'hello [SEP] world[MASK]x [cls] [UNK]' },
  { name: 'special_token_inside_word', text: 'a[CLS]b' },
  { name: 'numbers_and_dates', text: '2024-01-15 3.14 1,000' },
  { name: 'truncate_at_8', text: 'the quick brown fox jumps over the lazy dog', max_tokens: 8 },
  { name: 'fits_exactly_8', text: 'the quick brown fox jumps over', max_tokens: 8 },
  { name: 'truncate_inside_word', text: 'the quick unaffable', max_tokens: 5 },
  { name: 'truncate_to_specials_only', text: 'hello world', max_tokens: 2 },
];

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = outDir + '/';

fs.mkdirSync(outDir, { recursive: true });
for (const [name, m] of Object.entries(models)) {
  const dir = path.join(outDir, name);
  fs.mkdirSync(dir, { recursive: true });
  if (m.vocabTxt) fs.writeFileSync(path.join(dir, 'vocab.txt'), vocab.join('\n') + '\n');
  else fs.rmSync(path.join(dir, 'vocab.txt'), { force: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(m), null, 1) + '\n');
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'),
                   JSON.stringify(tokenizerConfig(m), null, 2) + '\n');
  if (m.inputLowercase) {
    fs.writeFileSync(path.join(dir, 'sentence_bert_config.json'),
                     JSON.stringify({ max_seq_length: 256, do_lower_case: true }, null, 2) + '\n');
  }
}

const DEFAULT_MAX_TOKENS = 512;
const expected = [];
for (const [model, m] of Object.entries(models)) {
  const tokenizer = await AutoTokenizer.from_pretrained(model);
  for (const c of cases) {
    const maxTokens = c.max_tokens ?? DEFAULT_MAX_TOKENS;
    let input = c.reference ?? c.text;
    if (m.inputLowercase) input = input.toLowerCase();
    // Truncation as the Python and Rust tokenizers do it: the text's tokens
    // are cut to max_tokens - 2, then [CLS] and [SEP] are added. The
    // JavaScript port's truncation: true cuts after adding them, which
    // drops [SEP], so it is not used.
    const body = tokenizer.encode(input, { add_special_tokens: false });
    const kept = body.slice(0, maxTokens - 2);
    const ids = [vocab.indexOf('[CLS]'), ...kept, vocab.indexOf('[SEP]')];
    expected.push({
      model, name: c.name, text: c.text, max_tokens: maxTokens,
      ids, tokens: ids.map((i) => vocab[i]), truncated: body.length > kept.length,
      ...(c.reference ? { reference_input: c.reference, why: c.why } : {}),
    });
  }
}

const header = {
  generator: 'scripts/embed/gen_tokenizer_fixtures.mjs',
  reference: '@huggingface/transformers ' +
    JSON.parse(fs.readFileSync(path.join(here, 'node_modules/@huggingface/transformers/package.json'))).version,
  vocab_size: vocab.length,
  cases: expected,
};
fs.writeFileSync(path.join(outDir, 'expected.json'), JSON.stringify(header, null, 1) + '\n');
console.log(`wrote ${expected.length} cases to ${path.relative(process.cwd(), outDir)}/expected.json`);
